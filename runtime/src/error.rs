//! What kind of failure a runtime error is, for callers that must answer
//! with a code (the shim's ttrpc status, wren-oci's exit), and the one
//! printer of an error with its causes.

/// The class of a failure, independent of how a caller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something malformed: a bad id, an invalid spec
    /// field, a seccomp profile or resource that cannot be applied.
    InvalidArgument,
    /// A container with that id already exists.
    AlreadyExists,
    /// No such container or process (or it has already exited).
    NotFound,
    /// The container is in the wrong state for the operation.
    FailedPrecondition,
    /// The host does not support what the spec asks for.
    Unsupported,
    /// Anything else: a syscall or the init failed.
    Internal,
}

/// `outer: inner: innermost`. Each error's text says only its own context,
/// so the chain says each once; an empty text adds nothing.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !text.is_empty() {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_sources_once() {
        let e = Outer(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(chain(&e), "outer: No such file or directory (os error 2)");
    }
}
