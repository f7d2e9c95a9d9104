//! The host's platform in OCI terms, and picking a manifest for it out of a
//! multi-platform index.
//!
//! Pure; runs in `wren`.

use oci_spec::image::Descriptor;

/// `os/arch[/variant]` as OCI spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Self {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parses `os/arch[/variant]` (`--platform linux/arm64`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(format!("invalid platform {s:?}: want os/arch[/variant]")),
        }
    }

    /// Whether `d` (a manifest in an index) is for this platform. A
    /// descriptor with no platform matches nothing; a missing variant
    /// matches any.
    pub fn matches(&self, d: &Descriptor) -> bool {
        let Some(p) = d.platform() else {
            return false;
        };
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.arch
            && match (p.variant(), &self.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl Platform {
    /// The platform an image's configuration says it is for.
    pub fn of(config: &oci_spec::image::ImageConfiguration) -> Self {
        Self {
            os: config.os().to_string(),
            arch: config.architecture().to_string(),
            variant: config.variant().clone(),
        }
    }

    /// Whether an image for `have` is one for this platform: os and
    /// architecture equal, and the variant where both name one.
    pub fn accepts(&self, have: &Platform) -> bool {
        self.os == have.os
            && self.arch == have.arch
            && match (&self.variant, &have.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_accepts_its_own_and_any_variant_of_it() {
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(arm.accepts(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(Platform::parse("linux/arm64/v8").unwrap().accepts(&arm));
        assert!(!arm.accepts(&Platform::parse("linux/amd64").unwrap()));
        assert!(!Platform::parse("linux/arm/v6")
            .unwrap()
            .accepts(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(Platform::parse("linux").is_err());
    }
}
