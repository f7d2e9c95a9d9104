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

/// The `--add-host` value Docker and Podman read as "the host, as this
/// container reaches it".
pub const HOST_GATEWAY: &str = "host-gateway";

/// `add_hosts` with `NAME:host-gateway` made `NAME:gateway` (the host's
/// address on the container's network; 127.0.0.1 for a host-network one).
/// Without a gateway such an entry is dropped.
pub fn with_host_gateway(add_hosts: &[String], gateway: Option<&str>) -> Vec<String> {
    add_hosts
        .iter()
        .filter_map(|h| match h.split_once(':') {
            Some((name, HOST_GATEWAY)) => gateway.map(|g| format!("{name}:{g}")),
            _ => Some(h.clone()),
        })
        .collect()
}

/// /etc/hosts: the usual local names, `--add-host`s (`NAME:IP`), the
/// container's own names with its address on each of its networks, then
/// `peers`; both (names, IP).
pub fn hosts(add_hosts: &[String], own: &[(String, String)], peers: &[(String, String)]) -> String {
    let mut s = String::from(LOCAL);
    for h in add_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    for (name, ip) in own.iter().chain(peers) {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// The `--dns`, `--dns-search` and `--dns-option` a container asked for;
/// each replaces what the host's file says of its kind, as in Docker.
#[derive(Debug, Default, Clone, Copy)]
pub struct Dns<'a> {
    pub servers: &'a [String],
    /// Search domains; `.` alone: none.
    pub search: &'a [String],
    pub options: &'a [String],
}

/// systemd-resolved's file listing the real upstream servers, which
/// /etc/resolv.conf hides behind its stub at 127.0.0.53.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The host's resolver configuration for a container in its own network
/// namespace: /etc/resolv.conf, unless that names only systemd-resolved's
/// stub (unreachable from the container), when the upstream servers
/// resolved uses are taken instead, as Docker does.
pub fn host_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if only_resolved_stub(&etc) {
        if let Ok(upstream) = std::fs::read_to_string(RESOLVED_UPSTREAM) {
            return upstream;
        }
    }
    etc
}

/// Whether a resolv.conf names systemd-resolved's stub and no other server.
fn only_resolved_stub(text: &str) -> bool {
    let mut servers = text.lines().filter_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver")).then(|| w.next().unwrap_or_default())
    });
    let first = servers.next();
    first == Some("127.0.0.53") && servers.all(|s| s == "127.0.0.53")
}

/// /etc/resolv.conf: `--dns` servers if given, else the host's file with
/// loopback nameservers dropped (they mean nothing in another network
/// namespace); Google's public servers if none is left, as Docker does.
/// `--dns-search` and `--dns-option` replace the host's `search`/`domain`
/// and `options` lines. `keep_loopback`: a host-network container sees the
/// host's servers as they are.
pub fn resolv_conf(host: &str, dns: &Dns, keep_loopback: bool) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let ip = words.next().unwrap_or_default();
                let loopback = ip.starts_with("127.") || ip == "::1";
                if !dns.servers.is_empty() || (loopback && !keep_loopback) {
                    continue;
                }
                servers += 1;
            }
            Some("search" | "domain") if !dns.search.is_empty() => continue,
            Some("options") if !dns.options.is_empty() => continue,
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in dns.servers {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    let search: Vec<&str> = dns
        .search
        .iter()
        .map(String::as_str)
        .filter(|d| *d != ".")
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
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
            &[("web".into(), "10.1.0.2".into())],
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
        let none = Dns::default();
        let r = resolv_conf(host, &none, false);
        assert_eq!(
            r,
            "search lan\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert!(resolv_conf(host, &none, true).contains("nameserver 127.0.0.53"));
        let servers = ["9.9.9.9".to_string()];
        let dns = Dns {
            servers: &servers,
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf("nameserver 1.1.1.1\n", &dns, false),
            "nameserver 9.9.9.9\n"
        );
    }

    #[test]
    fn host_gateway_becomes_the_gateway() {
        let h = vec![
            "db:10.0.0.9".to_string(),
            "host.docker.internal:host-gateway".to_string(),
        ];
        assert_eq!(
            with_host_gateway(&h, Some("10.89.0.1")),
            ["db:10.0.0.9", "host.docker.internal:10.89.0.1"]
        );
        assert_eq!(with_host_gateway(&h, None), ["db:10.0.0.9"]);
    }

    #[test]
    fn resolveds_stub_alone_sends_to_its_upstream_file() {
        assert!(only_resolved_stub(
            "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
        ));
        assert!(!only_resolved_stub(
            "nameserver 127.0.0.53\nnameserver 10.0.0.1\n"
        ));
        assert!(!only_resolved_stub("nameserver 10.0.0.1\n"));
        assert!(!only_resolved_stub("# nameserver 127.0.0.53\n"));
        assert!(!only_resolved_stub(""));
    }

    #[test]
    fn search_and_options_replace_the_hosts() {
        let host = "domain corp\nsearch lan corp\nnameserver 10.0.0.1\noptions edns0\n";
        let (search, options) = (
            vec!["a.example".to_string(), "b.example".to_string()],
            vec!["ndots:2".to_string(), "timeout:1".to_string()],
        );
        let dns = Dns {
            servers: &[],
            search: &search,
            options: &options,
        };
        assert_eq!(
            resolv_conf(host, &dns, false),
            "nameserver 10.0.0.1\nsearch a.example b.example\noptions ndots:2 timeout:1\n"
        );
        // `.`: no search domains at all; options untouched when not given.
        let dot = vec![".".to_string()];
        let dns = Dns {
            search: &dot,
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf(host, &dns, false),
            "nameserver 10.0.0.1\noptions edns0\n"
        );
    }
}
