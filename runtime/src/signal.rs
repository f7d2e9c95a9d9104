//! Signal names: the one table that `wren-oci kill`, `wren kill` and any
//! other command line use to turn what a user typed into a signal number,
//! and back. Pure functions, no syscalls; runs in whichever process parses
//! arguments.
//!
//! Accepted: a number (`9`), a name with or without the `SIG` prefix in
//! any case (`TERM`, `sigterm`, `SIGTERM`), and the real-time signals as
//! `kill -l` and Docker spell them: `RTMIN`, `RTMIN+3`, `RTMAX`, `RTMAX-1`
//! (also with `SIG`). `RTMIN` is the C library's first free real-time
//! signal (34 with glibc), not the kernel's 32, which the threading
//! library keeps for itself.

/// Signals by name, without the `SIG` prefix; the first name of a number
/// is the one [`name`] gives back.
const TABLE: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    #[cfg(not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// A signal that is neither a known name nor a number in range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?}")]
pub struct UnknownSignal(pub String);

/// The first real-time signal a container process may use.
pub fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The last signal number.
pub fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

/// A signal by number (1 to [`rtmax`]), name or `SIG`-name in any case,
/// or `RTMIN[+n]` / `RTMAX[-n]`.
pub fn parse(s: &str) -> Result<i32, UnknownSignal> {
    let unknown = || UnknownSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=rtmax()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = TABLE.iter().find(|(name, _)| *name == bare) {
        return Ok(n);
    }
    realtime(bare).ok_or_else(unknown)
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`, within the real-time range.
fn realtime(bare: &str) -> Option<i32> {
    let offset = |rest: &str, sign: char| -> Option<i32> {
        match rest {
            "" => Some(0),
            _ => {
                let digits = rest.strip_prefix(sign)?;
                // Digits only: no second sign, no spaces.
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse::<i32>().ok()
            }
        }
    };
    let n = if let Some(rest) = bare.strip_prefix("RTMIN") {
        rtmin().checked_add(offset(rest, '+')?)?
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        rtmax().checked_sub(offset(rest, '-')?)?
    } else {
        return None;
    };
    (rtmin()..=rtmax()).contains(&n).then_some(n)
}

/// The name of a signal without the `SIG` prefix (`TERM`, `RTMIN+3`),
/// or `None` for a number that is no signal here.
pub fn name(sig: i32) -> Option<String> {
    if let Some(&(name, _)) = TABLE.iter().find(|(_, n)| *n == sig) {
        return Some(name.to_string());
    }
    let (min, max) = (rtmin(), rtmax());
    if !(min..=max).contains(&sig) {
        return None;
    }
    // As `kill -l` does: the lower half counts up from RTMIN, the upper
    // half down from RTMAX.
    Some(if sig == min {
        "RTMIN".to_string()
    } else if sig == max {
        "RTMAX".to_string()
    } else if sig - min <= (max - min) / 2 {
        format!("RTMIN+{}", sig - min)
    } else {
        format!("RTMAX-{}", max - sig)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_range() {
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("15"), Ok(libc::SIGTERM));
        assert_eq!(parse(&rtmax().to_string()), Ok(rtmax()));
        assert!(parse("0").is_err());
        assert!(parse("-1").is_err());
        assert!(parse(&(rtmax() + 1).to_string()).is_err());
    }

    #[test]
    fn names_in_any_case_with_or_without_sig() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "SigTerm"] {
            assert_eq!(parse(s), Ok(libc::SIGTERM), "{s}");
        }
        assert_eq!(parse("kill"), Ok(libc::SIGKILL));
        assert_eq!(parse("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse("winch"), Ok(libc::SIGWINCH));
        assert_eq!(parse("IOT"), Ok(libc::SIGABRT));
        assert_eq!(parse("CLD"), Ok(libc::SIGCHLD));
        assert_eq!(parse("POLL"), Ok(libc::SIGIO));
    }

    #[test]
    fn unknown_names_are_refused_and_named() {
        for s in ["NOPE", "", "SIG", "SIGSIGTERM", "TERM ", "9x"] {
            let e = parse(s).unwrap_err();
            assert_eq!(e, UnknownSignal(s.to_string()));
        }
        assert_eq!(
            parse("NOPE").unwrap_err().to_string(),
            "unknown signal \"NOPE\""
        );
    }

    #[test]
    fn realtime_signals() {
        let (min, max) = (rtmin(), rtmax());
        assert!(min >= 32 && max > min + 8, "{min}..{max}");
        assert_eq!(parse("RTMIN"), Ok(min));
        assert_eq!(parse("rtmin+3"), Ok(min + 3));
        assert_eq!(parse("SIGRTMIN+3"), Ok(min + 3));
        assert_eq!(parse("RTMIN+0"), Ok(min));
        assert_eq!(parse("RTMAX"), Ok(max));
        assert_eq!(parse("RTMAX-1"), Ok(max - 1));
        assert_eq!(parse("sigrtmax-2"), Ok(max - 2));
        assert_eq!(parse(&format!("RTMIN+{}", max - min)), Ok(max));
        assert_eq!(parse(&format!("RTMAX-{}", max - min)), Ok(min));
        for bad in [
            "RTMIN-1",
            "RTMAX+1",
            "RTMIN+",
            "RTMIN++1",
            "RTMIN+-1",
            "RTMIN+ 1",
            "RTMINX",
            "RTMIN+99",
            "RTMAX-99",
            "RTMIN+99999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_round_trip() {
        for sig in 1..=rtmax() {
            let Some(n) = name(sig) else {
                // Only the kernel's own real-time signals below RTMIN
                // (and numbers no arch uses) have no name.
                assert!(sig >= 32 && sig < rtmin() || sig == 16, "{sig}");
                continue;
            };
            assert_eq!(parse(&n), Ok(sig), "{n}");
            assert_eq!(parse(&format!("SIG{n}")), Ok(sig), "{n}");
        }
        assert_eq!(name(libc::SIGTERM).as_deref(), Some("TERM"));
        assert_eq!(name(libc::SIGABRT).as_deref(), Some("ABRT"));
        assert_eq!(name(libc::SIGCHLD).as_deref(), Some("CHLD"));
        assert_eq!(name(rtmin() + 3), Some("RTMIN+3".into()));
        assert_eq!(name(rtmax() - 1), Some("RTMAX-1".into()));
        assert_eq!(name(0), None);
        assert_eq!(name(rtmax() + 1), None);
    }
}
