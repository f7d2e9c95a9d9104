//! The variables a compose file is interpolated with: wren's environment
//! over the `.env` file beside the compose file, as Docker Compose takes
//! them. The interpolation itself (`${VAR:-default}`, `$$`, ...) is
//! serde-saphyr's Docker Compose mode, applied to values while the YAML is
//! read, so a substituted value never changes the file's structure.
//!
//! Runs in `wren`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// wren's environment over `dir/.env` (if there is one).
pub fn variables(dir: &Path) -> Result<HashMap<String, String>, String> {
    let path = dir.join(".env");
    let mut vars: HashMap<String, String> = match std::fs::read_to_string(&path) {
        Ok(text) => parse_dotenv(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .into_iter()
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => return Err(format!("read {}: {e}", path.display())),
    };
    vars.extend(std::env::vars());
    Ok(vars)
}

/// The length of the variable name that starts `s`.
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first()
        .is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_'))
    {
        return 0;
    }
    b.iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        .unwrap_or(b.len())
}

/// The variables that `value` names as a plain `$NAME` or `${NAME}` and
/// `vars` lacks: Compose makes each an empty string with a warning, and so
/// does wren. A name with a default, alternative or required form
/// (`${NAME:-x}`, `${NAME+x}`, `${NAME?x}`) is the file's own choice and
/// not reported; `$$` is a literal `$`.
pub fn unset_references<'a>(value: &'a str, vars: &HashMap<String, String>) -> Vec<&'a str> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                let name = &value[i + 2..i + 2 + name_len(&value[i + 2..])];
                let end = i + 2 + name.len();
                if !name.is_empty() && b.get(end) == Some(&b'}') {
                    out.push(name);
                    i = end + 1;
                } else {
                    // An operator form: skip to its closing brace.
                    let mut depth = 0usize;
                    let mut j = i + 1;
                    while j < b.len() {
                        match b[j] {
                            b'{' => depth += 1,
                            b'}' => depth -= 1,
                            _ => {}
                        }
                        j += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    i = j;
                }
            }
            _ => {
                let n = name_len(&value[i + 1..]);
                if n > 0 {
                    out.push(&value[i + 1..i + 1 + n]);
                }
                i += 1 + n;
            }
        }
    }
    out.retain(|n| !vars.contains_key(*n));
    out
}

/// `KEY=VALUE` lines (`export ` allowed, `#` comments, values optionally
/// in matching single or double quotes).
fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: want KEY=VALUE", i + 1))?;
        let k = k.trim();
        if k.is_empty() || name_len(k) != k.len() {
            return Err(format!("line {}: {k:?} is not a variable name", i + 1));
        }
        let v = v.trim();
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
            .unwrap_or(v);
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unset_plain_references_are_found_and_the_rest_left_alone() {
        let vars: HashMap<String, String> = [("SET".to_string(), String::new())].into();
        let found = unset_references(
            "$A ${B} $$C ${SET} $SET ${D:-x} ${E-${F}} ${G?no} ${H:+y} $9 tail$",
            &vars,
        );
        assert_eq!(found, ["A", "B"]);
        assert!(unset_references("${unclosed", &vars).is_empty());
    }

    use super::*;

    #[test]
    fn dotenv() {
        let m = parse_dotenv("# c\nA=1\nexport B = \"two words\"\nC='x=y'\n\nD=\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
        assert_eq!(m["D"], "");
        assert!(parse_dotenv("JUST TEXT\n").is_err());
        assert!(parse_dotenv("1A=x\n").is_err());
    }
}
