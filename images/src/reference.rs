//! Image references as users type them, normalised the way Docker does
//! (`busybox` is `docker.io/library/busybox:latest`), with oci-spec's
//! reference parser.
//!
//! Pure; runs in `wren`.

use oci_spec::distribution::Reference;

/// The full form of `reference`, or `None` if it is not a valid reference.
pub fn normalise(reference: &str) -> Option<String> {
    reference.parse::<Reference>().ok().map(|r| r.whole())
}

/// Parses `reference`, naming it in the error.
pub fn parse(reference: &str) -> Result<Reference, String> {
    reference
        .parse::<Reference>()
        .map_err(|e| format!("invalid image reference {reference:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names() {
        assert_eq!(
            normalise("busybox").as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            normalise("team/app:1.4").as_deref(),
            Some("docker.io/team/app:1.4")
        );
        assert_eq!(
            normalise("127.0.0.1:5000/a/b:v1").as_deref(),
            Some("127.0.0.1:5000/a/b:v1")
        );
        assert!(normalise("bad name").is_none());
        assert!(normalise("a/B").is_none());
    }
}
