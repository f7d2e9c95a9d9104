//! The /etc/hosts, /etc/resolv.conf and /etc/hostname a container gets,
//! bind-mounted from its record directory (`net/`) as Docker does. Contents
//! are built here; [`write_in_place`] rewrites a file a container already
//! has mounted without replacing its inode.
//!
//! Pure text and small file writes; runs in `wren` (the network helper)
//! and `wrend` (containers on `none` and `host`).

use std::io::Write;
use std::path::Path;

/// File names inside a container's `net/` directory, and where each goes.
pub const MOUNTS: [(&str, &str); 3] = [
    ("hosts", "/etc/hosts"),
    ("resolv.conf", "/etc/resolv.conf"),
    ("hostname", "/etc/hostname"),
];

const LOCAL: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// /etc/hosts: the usual local names, `--add-host`s (`NAME:IP`), the
/// container's own address under its hostname, then `peers` (name, IP).
pub fn hosts(
    add_hosts: &[String],
    own: Option<(&str, &str)>,
    peers: &[(String, String)],
) -> String {
    let mut s = String::from(LOCAL);
    for h in add_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    if let Some((ip, name)) = own {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    for (name, ip) in peers {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// /etc/resolv.conf: `--dns` servers if given, else the host's file with
/// loopback nameservers dropped (they mean nothing in another network
/// namespace); Google's public servers if none is left, as Docker does.
/// `keep_loopback`: a host-network container sees the host's as is.
pub fn resolv_conf(host: &str, dns: &[String], keep_loopback: bool) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let ip = words.next().unwrap_or_default();
            let loopback = ip.starts_with("127.") || ip == "::1";
            if !dns.is_empty() || (loopback && !keep_loopback) {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// Rewrites `path` in place (truncate and write): a bind mount of it in a
/// running container keeps seeing the same inode.
pub fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Writes the three files into `dir` (made if needed).
pub fn write_all(dir: &Path, hosts: &str, resolv: &str, hostname: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_in_place(&dir.join("hosts"), hosts)?;
    write_in_place(&dir.join("resolv.conf"), resolv)?;
    write_in_place(&dir.join("hostname"), &format!("{hostname}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_extra_own_and_peers() {
        let h = hosts(
            &["db:10.0.0.9".into()],
            Some(("10.1.0.2", "web")),
            &[("api".into(), "10.1.0.3".into())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.0.0.9\tdb\n"));
        assert!(h.contains("10.1.0.2\tweb\n"));
        assert!(h.ends_with("10.1.0.3\tapi\n"));
    }

    #[test]
    fn resolv_drops_loopback_and_takes_dns() {
        let host = "search lan\nnameserver 127.0.0.53\noptions edns0\n";
        let r = resolv_conf(host, &[], false);
        assert_eq!(
            r,
            "search lan\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert!(resolv_conf(host, &[], true).contains("nameserver 127.0.0.53"));
        let r = resolv_conf("nameserver 1.1.1.1\n", &["9.9.9.9".into()], false);
        assert_eq!(r, "nameserver 9.9.9.9\n");
    }
}
