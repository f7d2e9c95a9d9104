//! Parsing containerd's description of a process's stdio: three strings
//! (stdin, stdout, stderr) whose form is chosen by stdout, as containerd's
//! runc shim does:
//!
//! - all three empty: /dev/null for everything;
//! - a plain path (or `fifo://path`): FIFOs created by the client;
//! - `file:///path`: stdout and stderr appended to one file;
//! - `binary:///path?k=v&...` (and `binary-v2://`, which must signal
//!   readiness with a byte instead of EOF): a logging program that receives
//!   the output pipes as fds 3 and 4.
//!
//! Pure functions on untrusted strings: no I/O here, so it can be fuzzed.

use std::path::PathBuf;

/// Where output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Everything to /dev/null.
    Null,
    /// Client-created FIFOs; an empty path means that stream is not wanted.
    Fifos {
        stdout: Option<PathBuf>,
        stderr: Option<PathBuf>,
    },
    /// stdout and stderr appended to this file.
    File(PathBuf),
    /// A logging program and its arguments (from the query, in order).
    Binary {
        path: PathBuf,
        args: Vec<String>,
        /// `binary-v2`: readiness is one written byte, EOF is a failure.
        v2: bool,
    },
}

/// A process's stdio, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioUris {
    /// The stdin FIFO, if any.
    pub stdin: Option<PathBuf>,
    pub output: Output,
}

/// A stdio string that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    #[error("{which} {value:?}: unknown stdio scheme {scheme:?} (want a fifo path, file://, binary:// or binary-v2://)")]
    Scheme {
        which: &'static str,
        value: String,
        scheme: String,
    },
    #[error("{which} {value:?}: the path must be absolute")]
    Relative { which: &'static str, value: String },
    #[error("{which} {value:?}: bad percent-encoding")]
    Encoding { which: &'static str, value: String },
    #[error("{which} {value:?}: contains a NUL byte")]
    Nul { which: &'static str, value: String },
}

fn percent_decode(which: &'static str, value: &str, s: &str) -> Result<String, UriError> {
    let bad = || UriError::Encoding {
        which,
        value: value.to_string(),
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).map_err(|_| bad())?;
    if s.contains('\0') {
        return Err(UriError::Nul {
            which,
            value: value.to_string(),
        });
    }
    Ok(s)
}

fn absolute(which: &'static str, value: &str, path: String) -> Result<PathBuf, UriError> {
    if !path.starts_with('/') {
        return Err(UriError::Relative {
            which,
            value: value.to_string(),
        });
    }
    Ok(PathBuf::from(path))
}

/// A FIFO path: plain, or `fifo://` + path. Empty means none.
fn fifo(which: &'static str, value: &str) -> Result<Option<PathBuf>, UriError> {
    if value.is_empty() {
        return Ok(None);
    }
    let path = value.strip_prefix("fifo://").unwrap_or(value);
    if path.contains('\0') {
        return Err(UriError::Nul {
            which,
            value: value.to_string(),
        });
    }
    absolute(which, value, path.to_string()).map(Some)
}

/// Splits `scheme://rest`; `None` for a plain path.
fn scheme(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// `//host/path?query` after the scheme: the path (percent-decoded) and the
/// raw query. A host part is ignored, as Go's url.Parse then takes `.Path`.
fn path_and_query(rest: &str) -> (&str, Option<&str>) {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    // `file:///x` leaves "/x"; `file://host/x` leaves "host/x": drop the host.
    let path = if path.starts_with('/') {
        path
    } else {
        path.find('/').map_or("", |i| &path[i..])
    };
    (path, query)
}

/// Parses the three stdio strings of a Create or Exec request.
pub fn parse(stdin: &str, stdout: &str, stderr: &str) -> Result<StdioUris, UriError> {
    let stdin_path = fifo("stdin", stdin)?;
    if stdin.is_empty() && stdout.is_empty() && stderr.is_empty() {
        return Ok(StdioUris {
            stdin: None,
            output: Output::Null,
        });
    }
    let output = match scheme(stdout) {
        None | Some(("fifo", _)) => Output::Fifos {
            stdout: fifo("stdout", stdout)?,
            stderr: fifo("stderr", stderr)?,
        },
        Some(("file", rest)) => {
            let (path, _) = path_and_query(rest);
            let path = percent_decode("stdout", stdout, path)?;
            Output::File(absolute("stdout", stdout, path)?)
        }
        Some((s @ ("binary" | "binary-v2"), rest)) => {
            let (path, query) = path_and_query(rest);
            let path = absolute("stdout", stdout, percent_decode("stdout", stdout, path)?)?;
            let mut args = Vec::new();
            for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (k, v) = match pair.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (pair, None),
                };
                let plus = |s: &str| s.replace('+', " ");
                args.push(percent_decode("stdout", stdout, &plus(k))?);
                if let Some(v) = v {
                    args.push(percent_decode("stdout", stdout, &plus(v))?);
                }
            }
            Output::Binary {
                path,
                args,
                v2: s == "binary-v2",
            }
        }
        Some((other, _)) => {
            return Err(UriError::Scheme {
                which: "stdout",
                value: stdout.to_string(),
                scheme: other.to_string(),
            })
        }
    };
    Ok(StdioUris {
        stdin: stdin_path,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_fifo_file_binary() {
        assert_eq!(parse("", "", "").unwrap().output, Output::Null);
        let f = parse("/f/in", "/f/out", "").unwrap();
        assert_eq!(f.stdin, Some(PathBuf::from("/f/in")));
        assert_eq!(
            f.output,
            Output::Fifos {
                stdout: Some("/f/out".into()),
                stderr: None
            }
        );
        assert_eq!(
            parse("", "file:///var/log/a%20b.log", "file:///var/log/a%20b.log")
                .unwrap()
                .output,
            Output::File("/var/log/a b.log".into())
        );
        assert_eq!(
            parse("", "binary:///usr/bin/logger?id=x&verbose&m=a+b", "")
                .unwrap()
                .output,
            Output::Binary {
                path: "/usr/bin/logger".into(),
                args: vec![
                    "id".into(),
                    "x".into(),
                    "verbose".into(),
                    "m".into(),
                    "a b".into()
                ],
                v2: false
            }
        );
        assert!(matches!(
            parse("", "binary-v2:///l", "").unwrap().output,
            Output::Binary { v2: true, .. }
        ));
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = parse("", "tcp://1.2.3.4:5", "").unwrap_err();
        assert!(e.to_string().contains("stdout"), "{e}");
        assert!(matches!(e, UriError::Scheme { .. }));
        assert!(matches!(
            parse("relative", "/o", "").unwrap_err(),
            UriError::Relative { which: "stdin", .. }
        ));
        assert!(matches!(
            parse("", "file://%zz", "").unwrap_err(),
            UriError::Relative { .. } | UriError::Encoding { .. }
        ));
        assert!(matches!(
            parse("", "file:///a%00b", "").unwrap_err(),
            UriError::Nul { .. }
        ));
        assert!(parse("", "binary:///x?%", "").is_err());
    }
}
