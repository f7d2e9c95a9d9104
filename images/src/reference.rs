//! Image references as users type them, normalised the way Docker does
//! (`busybox` is `docker.io/library/busybox:latest`), with oci-spec's
//! reference parser.
//!
//! Pure; runs in `wren`.

use oci_spec::distribution::Reference;

/// The full form of `reference`, or `None` if it is not a valid reference.
pub fn normalise(reference: &str) -> Option<String> {
    parse(reference).ok().map(|r| r.whole())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `host[:port]`: DNS labels of letters, digits and inner `-`, or `[v6]`.
fn domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || d.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty() && v6.bytes().all(|x| x.is_ascii_hexdigit() || x == b':');
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// Parses `reference` by the distribution reference grammar, with
/// Docker's defaults (registry `docker.io`, `library/` for one-word names,
/// tag `latest`). Written out rather than using oci-spec's parser, whose
/// regex costs ~60 ms to build on every `wren pull` and `wren run`.
pub fn parse(reference: &str) -> Result<Reference, String> {
    let bad = |why: &str| format!("invalid image reference {reference:?}: {why}");
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => {
            let (algo, hex) = d.split_once(':').ok_or_else(|| bad("bad digest"))?;
            let len = match algo {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return Err(bad("unsupported digest algorithm")),
            };
            if hex.len() != len || !hex.bytes().all(|x| matches!(x, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad("bad digest"));
            }
            (r, Some(d.to_string()))
        }
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let b = t.as_bytes();
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        if b.is_empty()
            || b.len() > 128
            || !word(b[0])
            || !b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
        {
            return Err(bad("bad tag"));
        }
    }
    if name.is_empty() {
        return Err(bad("no name"));
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|x| x.is_ascii_uppercase()) =>
        {
            if !domain(first) {
                return Err(bad("bad registry"));
            }
            let first = if first == "index.docker.io" {
                "docker.io"
            } else {
                first
            };
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    if repository.len() > 255 || !repository.split('/').all(path_component) {
        return Err(bad(
            "a name is lower-case letters, digits and . _ - separators",
        ));
    }
    Ok(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(registry, repository, t.into(), d),
        (None, Some(d)) => Reference::with_digest(registry, repository, d),
        (t, None) => Reference::with_tag(registry, repository, t.unwrap_or("latest").into()),
    })
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
        assert_eq!(
            normalise("localhost:5000/x@sha256:0000000000000000000000000000000000000000000000000000000000000000").as_deref(),
            Some("localhost:5000/x@sha256:0000000000000000000000000000000000000000000000000000000000000000")
        );
        assert_eq!(
            normalise("index.docker.io/a/b").as_deref(),
            Some("docker.io/a/b:latest")
        );
        assert!(normalise("a/b:").is_none());
        assert!(normalise("a//b").is_none());
        assert!(normalise("x@sha256:12").is_none());
        // The same answers as oci-spec's regex-based parser.
        for r in [
            "busybox",
            "a/b:c",
            "my.reg:5000/p/q:t",
            "a-b__c/d.e-f:1.2",
            "localhost/x",
        ] {
            let theirs: Reference = r.parse().unwrap();
            assert_eq!(normalise(r), Some(theirs.whole()), "{r}");
        }
        assert!(normalise("a/B").is_none());
    }
}
