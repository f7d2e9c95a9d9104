//! Small helpers for reading and writing cgroupfs control files, shared by the
//! v1 and v2 controllers. Every error names the file.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::CgroupError;

/// Writes `value` to the control file `dir/file` in one `write(2)`, without
/// creating it (a missing file means the kernel lacks the knob).
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let res = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}

/// Reads a whole control file.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// Reads a control file, `None` if it does not exist.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Parses one number; "max" (v2) comes back as `u64::MAX`, an empty file as 0.
pub(crate) fn parse_u64(dir: &Path, file: &str, text: &str) -> Result<u64, CgroupError> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u64>().map_err(|_| CgroupError::Parse {
        path: dir.join(file),
        content: t.to_owned(),
    })
}

/// Reads a single-number control file; 0 if it does not exist.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(dir, file, &s),
        None => Ok(0),
    }
}

/// Parses a flat-keyed file (`key value` per line, like memory.stat or cpu.stat).
pub(crate) fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?;
            let v = if v == "max" {
                u64::MAX
            } else {
                v.parse().ok()?
            };
            Some((k.to_owned(), v))
        })
        .collect()
}

/// Reads a flat-keyed file; empty if it does not exist.
pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(read_opt(dir, file)?
        .map(|s| flat_keyed(&s))
        .unwrap_or_default())
}

/// Parses `cgroup.procs`.
pub(crate) fn parse_pids(dir: &Path, file: &str, text: &str) -> Result<Vec<i32>, CgroupError> {
    text.split_whitespace()
        .map(|p| {
            p.parse::<i32>().map_err(|_| CgroupError::Parse {
                path: dir.join(file),
                content: p.to_owned(),
            })
        })
        .collect()
}

/// Every pid in `dir` and its descendant cgroups (a container may have made
/// its own sub-cgroups).
pub(crate) fn pids_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let text = match read_opt(dir, "cgroup.procs")? {
        Some(t) => t,
        None => return Ok(()),
    };
    out.extend(parse_pids(dir, "cgroup.procs", &text)?);
    for child in subdirs(dir)? {
        pids_recursive(&child, out)?;
    }
    Ok(())
}

/// The child directories of `dir` (child cgroups); empty if `dir` is gone.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<std::path::PathBuf>, CgroupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_parses_max_and_skips_junk() {
        let m = flat_keyed("a 1\nb max\nc\nd x\n");
        assert_eq!(m.get("a"), Some(&1));
        assert_eq!(m.get("b"), Some(&u64::MAX));
        assert_eq!(m.len(), 2);
    }
}
