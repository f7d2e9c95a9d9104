//! The container's /dev: the default device nodes and links every runtime
//! provides, plus `linux.devices`. Everything is created relative to an fd of
//! the container's /dev, opened without following symlinks, so an image whose
//! /dev is a link cannot aim device creation at the host (CVE-2026-41579
//! class). Inside a user namespace, where mknod is forbidden, the host's node
//! is bind-mounted instead. Runs in the init process before pivot_root.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::path::Root;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("open the container's /dev")]
    OpenDev(#[source] io::Error),
    #[error("create device {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create link /dev/{name}")]
    Link {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// A device node to create.
#[derive(Debug, Clone, Copy)]
struct Node<'a> {
    path: &'a Path,
    kind: u32,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The nodes every container gets (public for checkpoint's external mounts).
pub const DEFAULTS: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Check one `linux.devices` entry.
pub fn validate(d: &LinuxDevice) -> Result<(), String> {
    let p = d.path();
    if !p.is_absolute()
        || !crate::path::clean(p).starts_with("dev")
        || crate::path::clean(p) == Path::new("dev")
    {
        return Err(format!("path {p:?} is not below /dev"));
    }
    match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::B | LinuxDeviceType::U | LinuxDeviceType::P => {}
        LinuxDeviceType::A => return Err("type \"a\" is only valid in device cgroup rules".into()),
    }
    if !(0..=0xfff).contains(&d.major()) || !(0..=0xfffff).contains(&d.minor()) {
        return Err(format!(
            "major/minor {}:{} out of range",
            d.major(),
            d.minor()
        ));
    }
    Ok(())
}

/// Create the default devices, the /dev links and `devices` under the
/// container's /dev (which the spec mounts, normally a tmpfs).
pub fn setup(root: &Root, devices: &[LinuxDevice], in_userns: bool) -> Result<(), DeviceError> {
    // /dev itself must be an ordinary directory inside the rootfs.
    let dev = root
        .resolve(Path::new("/dev"), libc::O_RDONLY | libc::O_DIRECTORY, true)
        .map_err(DeviceError::OpenDev)?;
    for (path, major, minor) in DEFAULTS {
        if devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        let node = Node {
            path: Path::new(path),
            kind: libc::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        create(root, node, in_userns)?;
    }
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let node = Node {
            path: d.path(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(root, node, in_userns)?;
    }
    for (name, target) in LINKS {
        match sys::symlinkat(Path::new(target), dev.as_fd(), Path::new(name)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(source) => {
                return Err(DeviceError::Link {
                    name: name.into(),
                    source,
                })
            }
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = sys::symlinkat(Path::new("/proc/kcore"), dev.as_fd(), Path::new("core"));
    }
    Ok(())
}

fn create(root: &Root, node: Node<'_>, in_userns: bool) -> Result<(), DeviceError> {
    let err = |source: io::Error| DeviceError::Create {
        path: node.path.to_path_buf(),
        source,
    };
    let (parent, name) = root.parent_of(node.path, true).map_err(err)?;
    if in_userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let host = sys::open(node.path, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(err)?;
        let st = sys::fstat(host.as_fd()).map_err(err)?;
        if st.st_mode & libc::S_IFMT != node.kind
            || st.st_rdev != libc::makedev(node.major as u32, node.minor as u32)
        {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidData,
                "host node is not the requested device",
            )));
        }
        return crate::mounts::bind_fd(root, host.as_fd(), node.path, false).map_err(err);
    }
    let dev = libc::makedev(node.major as u32, node.minor as u32);
    match sys::mknodat(parent.as_fd(), &name, node.kind | node.mode, dev) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // Only an identical node may stay.
            let fd = sys::openat(parent.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                .map_err(err)?;
            let st = sys::fstat(fd.as_fd()).map_err(err)?;
            if st.st_mode & libc::S_IFMT != node.kind || st.st_rdev != dev {
                return Err(err(e));
            }
        }
        Err(e) => return Err(err(e)),
    }
    let fd = sys::openat(parent.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(err)?;
    // mknod applies the umask; set the exact mode and owner.
    sys::fchmod(fd.as_fd(), node.mode).map_err(err)?;
    sys::fchown(fd.as_fd(), node.uid, node.gid).map_err(err)
}

/// Open the container's /dev/null without following links and check it
/// really is the 1:3 character device, for masking files (CVE-2025-31133
/// class: a /dev/null that is a link or a plain file must never be bound
/// over a masked path).
pub fn verified_dev_null(root: &Root) -> io::Result<std::os::fd::OwnedFd> {
    let fd = root.resolve(
        Path::new("/dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        true,
    )?;
    let st = sys::fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "/dev/null is not the 1:3 character device",
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(json: &str) -> LinuxDevice {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn validate_rejects_paths_outside_dev_and_bad_types() {
        validate(&dev(
            r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229}"#,
        ))
        .unwrap();
        assert!(validate(&dev(r#"{"path":"/etc/x","type":"c","major":1,"minor":3}"#)).is_err());
        assert!(validate(&dev(
            r#"{"path":"/dev/../etc/x","type":"c","major":1,"minor":3}"#
        ))
        .is_err());
        assert!(validate(&dev(r#"{"path":"/dev/x","type":"a","major":1,"minor":3}"#)).is_err());
    }

    #[test]
    fn dev_null_must_be_the_real_device() {
        let host = Root::open(Path::new("/")).unwrap();
        verified_dev_null(&host).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.path().join("dev/null")).unwrap();
        assert!(verified_dev_null(&Root::open(dir.path()).unwrap()).is_err());
        std::fs::remove_file(dir.path().join("dev/null")).unwrap();
        std::fs::write(dir.path().join("dev/null"), "").unwrap();
        assert!(verified_dev_null(&Root::open(dir.path()).unwrap()).is_err());
    }
}
