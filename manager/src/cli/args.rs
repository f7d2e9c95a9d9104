//! A small argument parser for `wren`'s commands: `-x`, `--long`,
//! `--long=value` / `--long value` for options that take one, repeated
//! options, positionals, and everything after `--` kept verbatim.
//!
//! Runs in `wren`.

use std::collections::HashMap;

use super::CliError;

/// The parsed arguments of one command.
#[derive(Debug, Default)]
pub struct Parsed {
    flags: HashMap<String, Vec<String>>,
    pub positional: Vec<String>,
    /// After `--`.
    pub command: Vec<String>,
}

/// One option a command accepts: its names, and whether it takes a value.
pub struct Opt {
    pub names: &'static [&'static str],
    pub value: bool,
}

pub const fn flag(names: &'static [&'static str]) -> Opt {
    Opt {
        names,
        value: false,
    }
}

pub const fn opt(names: &'static [&'static str]) -> Opt {
    Opt { names, value: true }
}

/// Parses `args` against `opts`; the first name of an option is its key.
/// Options after the first positional still count (`wren rm a -f`), except
/// for commands whose trailing words are a container command, which must
/// come after `--` or after `stop_at` positionals.
pub fn parse(args: Vec<String>, opts: &[Opt], stop_at: Option<usize>) -> Result<Parsed, CliError> {
    let mut p = Parsed::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            p.command = it.by_ref().collect();
            break;
        }
        if stop_at.is_some_and(|n| p.positional.len() >= n) {
            p.command.push(a);
            p.command.extend(it.by_ref());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            p.positional.push(a);
            continue;
        }
        // Combined short booleans: -it, -dit.
        let expanded: Vec<String> = if !a.starts_with("--") && a.len() > 2 && !a.contains('=') {
            a[1..].chars().map(|c| format!("-{c}")).collect()
        } else {
            vec![a.clone()]
        };
        let n = expanded.len();
        for (i, part) in expanded.into_iter().enumerate() {
            let (name, inline) = match part.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (part.clone(), None),
            };
            let o = opts
                .iter()
                .find(|o| o.names.contains(&name.as_str()))
                .ok_or_else(|| CliError::usage(format!("unknown option {name}")))?;
            let key = o.names[0].to_string();
            let value = if o.value {
                if n > 1 && i + 1 < n {
                    return Err(CliError::usage(format!("option {name} needs a value")));
                }
                match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| CliError::usage(format!("option {name} needs a value")))?,
                }
            } else {
                String::new()
            };
            p.flags.entry(key).or_default().push(value);
        }
    }
    Ok(p)
}

impl Parsed {
    pub fn has(&self, key: &str) -> bool {
        self.flags.contains_key(key)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.flags
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn values(&self, key: &str) -> Vec<String> {
        self.flags.get(key).cloned().unwrap_or_default()
    }

    /// Exactly one positional: the container name.
    pub fn name(&self) -> Result<&str, CliError> {
        match self.positional.as_slice() {
            [n] => Ok(n),
            [] => Err(CliError::usage("a container name is needed")),
            _ => Err(CliError::usage(format!(
                "unexpected arguments: {}",
                self.positional[1..].join(" ")
            ))),
        }
    }

    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, CliError> {
        self.value(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| CliError::usage(format!("{key} wants a number, not {v:?}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        flag(&["-d", "--detach"]),
        flag(&["-i"]),
        flag(&["-t"]),
        opt(&["-e", "--env"]),
        opt(&["--rootfs"]),
    ];

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_positionals_and_command() {
        let p = parse(
            v(&[
                "-it",
                "--rootfs=/r",
                "-e",
                "A=1",
                "--env",
                "B=2",
                "web",
                "--",
                "sh",
                "-c",
                "x",
            ]),
            OPTS,
            None,
        )
        .unwrap();
        assert!(p.has("-i") && p.has("-t") && !p.has("-d"));
        assert_eq!(p.value("--rootfs"), Some("/r"));
        assert_eq!(p.values("-e"), v(&["A=1", "B=2"]));
        assert_eq!(p.name().unwrap(), "web");
        assert_eq!(p.command, v(&["sh", "-c", "x"]));
    }

    #[test]
    fn command_after_name_without_dashes() {
        let p = parse(v(&["-d", "web", "sleep", "-x"]), OPTS, Some(1)).unwrap();
        assert_eq!(p.name().unwrap(), "web");
        assert_eq!(p.command, v(&["sleep", "-x"]));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(v(&["--bogus"]), OPTS, None).unwrap_err().status, 2);
        assert!(parse(v(&["-e"]), OPTS, None).is_err());
        assert!(parse(v(&[]), OPTS, None).unwrap().name().is_err());
    }
}
