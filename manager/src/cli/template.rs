//! `--format` of `inspect` and `list`: the part of Go's text/template that
//! scripts written for `docker inspect -f` and `docker ps --format` use,
//! over wren's own JSON (its field names, as `--json` prints them):
//! `{{.field.sub}}`, `{{.}}`, `{{json .field}}`, `{{index .map "key"}}`,
//! `{{upper …}}`/`{{lower …}}`, `{{println}}`, and `\t`/`\n` escapes in the
//! text (as `docker ps --format` takes them). A missing field prints
//! `<no value>`, as Go's templates print it for a map.
//!
//! Runs in `wren`.

use serde_json::Value;

/// A parsed `--format`.
#[derive(Debug)]
pub struct Template(Vec<Piece>);

#[derive(Debug)]
enum Piece {
    Text(String),
    Action(Vec<Arg>),
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.a.b` (empty: `.`).
    Path(Vec<String>),
    /// `"text"`.
    Str(String),
    /// A function name.
    Word(String),
}

const FUNCS: [&str; 5] = ["json", "index", "upper", "lower", "println"];

impl Template {
    /// Parses `text`; an error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            pieces.push(Piece::Text(unescape(&rest[..start])));
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("--format {text:?}: an unclosed {{{{"))?;
            let action = after[..end]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-');
            pieces
                .push(Piece::Action(args(action.trim()).map_err(|e| {
                    format!("--format {text:?}: {{{{{action}}}}}: {e}")
                })?));
            rest = &after[end + 2..];
        }
        pieces.push(Piece::Text(unescape(rest)));
        Ok(Template(pieces))
    }

    /// The template applied to `v`.
    pub fn render(&self, v: &Value) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action(a) => out.push_str(&action(a, v)?),
            }
        }
        Ok(out)
    }
}

/// `\t` and `\n` written as two characters on a command line.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn args(action: &str) -> Result<Vec<Arg>, String> {
    let mut out = Vec::new();
    let mut rest = action;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').ok_or("an unclosed string")?;
            out.push(Arg::Str(r[..end].to_string()));
            rest = r[end + 1..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        if word == "." {
            out.push(Arg::Path(Vec::new()));
        } else if let Some(path) = word.strip_prefix('.') {
            out.push(Arg::Path(path.split('.').map(String::from).collect()));
        } else if word.parse::<i64>().is_ok() {
            // A number: an index into an array.
            out.push(Arg::Str(word.to_string()));
        } else if FUNCS.contains(&word) {
            out.push(Arg::Word(word.to_string()));
        } else {
            return Err(format!(
                "unknown word {word:?} (.field, \"text\", or one of {})",
                FUNCS.join(", ")
            ));
        }
        rest = rest[end..].trim_start();
    }
    if out.is_empty() {
        return Err("an empty action".into());
    }
    Ok(out)
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn value(a: &Arg, v: &Value) -> Result<Option<Value>, String> {
    match a {
        Arg::Path(p) => Ok(lookup(v, p).cloned()),
        Arg::Str(s) => Ok(Some(Value::from(s.clone()))),
        Arg::Word(w) => Err(format!("{w} needs arguments here")),
    }
}

/// How Go prints a value: strings bare, `<no value>` for a missing one,
/// objects and arrays as JSON (Go would print its own map syntax).
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<no value>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn action(a: &[Arg], v: &Value) -> Result<String, String> {
    match a {
        [Arg::Word(f), rest @ ..] => match (f.as_str(), rest) {
            ("println", []) => Ok("\n".into()),
            ("println", r) => Ok(format!("{}\n", action(r, v)?)),
            ("json", [x]) => Ok(value(x, v)?.unwrap_or(Value::Null).to_string()),
            ("upper", [x]) => Ok(text(value(x, v)?.as_ref()).to_uppercase()),
            ("lower", [x]) => Ok(text(value(x, v)?.as_ref()).to_lowercase()),
            ("index", [x, keys @ ..]) if !keys.is_empty() => {
                let mut cur = value(x, v)?;
                for k in keys {
                    let k = value(k, v)?.unwrap_or(Value::Null);
                    cur = match (cur, &k) {
                        (Some(Value::Object(m)), Value::String(s)) => m.get(s).cloned(),
                        (Some(Value::Array(a)), _) => k
                            .as_u64()
                            .or_else(|| k.as_str().and_then(|s| s.parse().ok()))
                            .and_then(|i| a.get(i as usize).cloned()),
                        _ => None,
                    };
                }
                Ok(text(cur.as_ref()))
            }
            (f, _) => Err(format!("{f}: wrong number of arguments")),
        },
        [x] => Ok(text(value(x, v)?.as_ref())),
        _ => Err("more than one value without a function".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_functions_and_escapes() {
        let v = json!({"name": "web", "status": "running", "pid": 42,
                       "labels": {"a.b": "c"}, "ports": ["80/tcp"], "health": null});
        assert_eq!(r("{{.status}}", &v), "running");
        assert_eq!(r("{{ .name }}:{{.pid}}", &v), "web:42");
        assert_eq!(r("{{.name}}\\t{{.status}}\\n", &v), "web\trunning\n");
        assert_eq!(r("{{json .labels}}", &v), r#"{"a.b":"c"}"#);
        assert_eq!(r("{{.ports}}", &v), r#"["80/tcp"]"#);
        assert_eq!(r(r#"{{index .labels "a.b"}}"#, &v), "c");
        assert_eq!(r("{{index .ports 0}}", &v), "80/tcp");
        assert_eq!(r(r#"{{index .ports "0"}}"#, &v), "80/tcp");
        assert_eq!(r("{{upper .status}}", &v), "RUNNING");
        assert_eq!(
            r("{{.health}} {{.nothing.deeper}}", &v),
            "<no value> <no value>"
        );
        assert_eq!(r("{{println .name}}", &v), "web\n");
        assert_eq!(r("{{json .}}", &json!({"x": 1})), r#"{"x":1}"#);
    }

    #[test]
    fn bad_templates_are_named() {
        for (t, want) in [
            ("{{.status", "unclosed"),
            ("{{range .x}}", "unknown word \"range\""),
            ("{{}}", "empty action"),
            ("{{json}}", "wrong number of arguments"),
            ("{{.a .b}}", "more than one value"),
            ("{{index .a \"x}}", "unclosed string"),
        ] {
            let e = Template::parse(t)
                .and_then(|t| t.render(&json!({})))
                .unwrap_err();
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
