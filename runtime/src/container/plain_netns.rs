//! A container's own network namespace left out of its checkpoint when it
//! holds nothing but what the runtime made: `lo`, up, with its loopback
//! addresses.
//!
//! criu dumps a network namespace with `ip` and `iptables-save` (and puts
//! it back with their restore commands): about 70 ms of an idle
//! container's dump and 50 ms of its restore on these machines, most of
//! the whole for a small container. runc never pays it: it always asks
//! criu to restore the network namespace empty ("runc doesn't manage
//! network devices"), which loses whatever the namespace held, loopback's
//! state included. wren keeps a namespace that holds more (criu dumps it
//! as before) and declares a plain one external under runc's key for a
//! joined namespace; restore makes a new one with `lo` up
//! ([`crate::loopback::new_namespace`]) and hands it to criu under that
//! key. Sockets in it (listening, established with `--tcp-established`)
//! are the tasks' and are dumped either way.
//!
//! Plain means: no user namespace (a namespace made at restore would not
//! be owned by the container's), no `net.*` sysctl in the spec, no
//! CAP_NET_ADMIN in the init's bounding set (nothing inside could have
//! changed it), and, as /proc shows it, one link (`lo`), IPv4 addresses
//! and IPv6 addresses only loopback ones, no IPv4 route outside the local
//! table and no iptables table. Not looked at (a host-side `nsenter`, or
//! an exec given CAP_NET_ADMIN, could have changed them): nftables,
//! policy rules, IPv6 routes, other sysctls.
//!
//! Runs in the caller (wren-oci, the shim).

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::namespaces::Namespace;
use crate::spec;

/// The marker wren writes next to the images of a dump that left the
/// container's plain network namespace out.
pub const NETNS_LOOPBACK: &str = "wren-netns-loopback";

/// criu's key for the container's network namespace when it is external
/// (runc's, for a joined one).
pub const NETNS_KEY: &str = "extRootNetNS";

const CAP_NET_ADMIN: u32 = 12;

/// What a dump does with a container's network namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum AtDump {
    /// None of its own: a joined one is external anyway, and without one
    /// the container is in the caller's, which criu leaves alone.
    NotOwn,
    /// Its own and plain: left out, made anew at restore.
    Plain,
    /// Its own and more than plain (why): criu dumps it.
    Dumped(String),
}

/// What the dump of `pid` (the init of a container with `spec`) does with
/// its network namespace.
pub fn at_dump(spec: &Spec, pid: i32) -> AtDump {
    let ns = match spec::namespaces(spec) {
        Ok(ns) => ns,
        Err(e) => return AtDump::Dumped(e.to_string()),
    };
    if !ns
        .iter()
        .any(|n| n.kind == LinuxNamespaceType::Network && n.path.is_none())
    {
        return AtDump::NotOwn;
    }
    match is_plain(spec, &ns, pid) {
        Ok(()) => AtDump::Plain,
        Err(why) => AtDump::Dumped(why),
    }
}

/// Whether a container's own network namespace is plain; the reason when
/// not.
fn is_plain(spec: &Spec, ns: &[Namespace], pid: i32) -> Result<(), String> {
    if ns.iter().any(|n| n.kind == LinuxNamespaceType::User) {
        return Err("a user namespace owns it".into());
    }
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    if let Some(key) = sysctls.and_then(|s| s.keys().find(|k| k.starts_with("net."))) {
        return Err(format!("linux.sysctl sets {key}"));
    }
    let proc = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}"));
    let status = proc("status").map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    if bounding_has(&status, CAP_NET_ADMIN) != Some(false) {
        return Err("CAP_NET_ADMIN in the bounding set".into());
    }
    let read = |name: &str| proc(name).map_err(|e| format!("/proc/{pid}/{name}: {e}"));
    check_state(
        &read("net/dev")?,
        &read("net/fib_trie")?,
        &read("net/route")?,
        // Absent without IPv6 or iptables: nothing there.
        &proc("net/if_inet6").unwrap_or_default(),
        &proc("net/ip_tables_names").unwrap_or_default(),
        &proc("net/ip6_tables_names").unwrap_or_default(),
    )
}

/// Is capability `cap` in the `CapBnd:` line of a /proc status?
fn bounding_has(status: &str, cap: u32) -> Option<bool> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    let bits = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(bits & (1 << cap) != 0)
}

/// The namespace's state as /proc shows it is a fresh one's.
fn check_state(
    dev: &str,
    fib_trie: &str,
    route: &str,
    if_inet6: &str,
    ip_tables: &str,
    ip6_tables: &str,
) -> Result<(), String> {
    let links: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    if links != ["lo"] {
        return Err(format!("links {links:?}"));
    }
    // Leaves are "|-- ADDR" lines; a fresh namespace has only 127.0.0.0/8.
    if let Some(a) = fib_trie
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("|-- "))
        .find(|a| !a.starts_with("127."))
    {
        return Err(format!("IPv4 address {a}"));
    }
    if let Some(r) = route.lines().nth(1) {
        return Err(format!(
            "IPv4 route {}",
            r.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    const V6_LOOPBACK: &str = "00000000000000000000000000000001";
    if let Some(l) = if_inet6.lines().find(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() != Some(&V6_LOOPBACK) || w.last() != Some(&"lo")
    }) {
        return Err(format!(
            "IPv6 address {}",
            l.split_whitespace().next().unwrap_or("")
        ));
    }
    if let Some(t) = ip_tables
        .lines()
        .chain(ip6_tables.lines())
        .find(|t| !t.is_empty())
    {
        return Err(format!("iptables table {t}"));
    }
    Ok(())
}

/// On restore: the network namespace to hand criu for an image that left
/// a plain one out (its marker is in `image`), unless the spec names one
/// to join (then that is handed over, as for any image). None when the
/// image carries its namespace (or criu is to restore it empty).
pub fn for_restore(image: &Path, spec: &Spec) -> Result<Option<OwnedFd>, io::Error> {
    if !image.join(NETNS_LOOPBACK).exists() {
        return Ok(None);
    }
    let ns = spec::namespaces(spec).map_err(io::Error::other)?;
    match ns.iter().find(|n| n.kind == LinuxNamespaceType::Network) {
        Some(n) if n.path.is_none() => crate::loopback::new_namespace().map(Some),
        // A joined one is handed over by the caller.
        Some(_) => Ok(None),
        // criu would only say it has no fd for the key.
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the checkpoint left the container's own network namespace out \
                 ({NETNS_LOOPBACK}): the bundle must give it a network namespace \
                 (linux.namespaces)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive |  Transmit\n face |bytes packets\n    lo: 0 0 0\n";
    const FIB: &str = "Main:\n  +-- 127.0.0.0/8 2 0 2\n     +-- 127.0.0.0/31 1 0 0\n        |-- 127.0.0.0\n           /8 host LOCAL\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 127.255.255.255\n        /32 link BROADCAST\n";
    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\n";
    const V6: &str = "00000000000000000000000000000001 01 80 10 80       lo\n";

    /// Only a namespace of its own is judged: a joined one or none is
    /// not looked at (no /proc read for a pid that does not exist here).
    #[test]
    fn a_joined_or_missing_namespace_is_not_judged() {
        let spec = |ns: &str| {
            let json = format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
                "process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
                "linux":{{"namespaces":[{{"type":"mount"}}{ns}]}}}}"#
            );
            crate::spec::parse(json.as_bytes(), Path::new("config.json")).unwrap()
        };
        let no_pid = i32::MAX;
        assert_eq!(at_dump(&spec(""), no_pid), AtDump::NotOwn);
        let joined = r#",{"type":"network","path":"/proc/self/ns/net"}"#;
        assert_eq!(at_dump(&spec(joined), no_pid), AtDump::NotOwn);
        match at_dump(&spec(r#",{"type":"network"}"#), no_pid) {
            AtDump::Dumped(why) => assert!(why.contains("/proc/"), "{why}"),
            other => panic!("own namespace of a missing pid: {other:?}"),
        }
    }

    #[test]
    fn a_fresh_namespace_is_plain() {
        assert_eq!(check_state(DEV, FIB, ROUTE, V6, "", ""), Ok(()));
        assert_eq!(check_state(DEV, FIB, ROUTE, "", "", ""), Ok(()));
    }

    #[test]
    fn anything_more_is_named() {
        let dev = format!("{DEV}  eth0: 1 2 3\n");
        let e = check_state(&dev, FIB, ROUTE, V6, "", "").unwrap_err();
        assert!(e.contains("eth0"), "{e}");
        let fib = format!("{FIB}        |-- 10.0.0.5\n           /32 host LOCAL\n");
        let e = check_state(DEV, &fib, ROUTE, V6, "", "").unwrap_err();
        assert_eq!(e, "IPv4 address 10.0.0.5");
        let route = format!("{ROUTE}lo\t0000000A\t00000000\t0001\n");
        assert!(check_state(DEV, FIB, &route, V6, "", "")
            .unwrap_err()
            .starts_with("IPv4 route lo"));
        let v6 = format!("{V6}fd000000000000000000000000000001 01 40 00 80 lo\n");
        assert!(check_state(DEV, FIB, ROUTE, &v6, "", "")
            .unwrap_err()
            .contains("fd00"));
        assert_eq!(
            check_state(DEV, FIB, ROUTE, V6, "filter\n", ""),
            Err("iptables table filter".into())
        );
        assert_eq!(
            check_state(DEV, FIB, ROUTE, V6, "", "nat\n"),
            Err("iptables table nat".into())
        );
    }

    #[test]
    fn net_admin_is_read_from_the_bounding_set() {
        assert_eq!(
            bounding_has("CapBnd:\t000001fffeffffff\n", CAP_NET_ADMIN),
            Some(true)
        );
        assert_eq!(
            bounding_has("CapBnd:\t00000000a80425fb\n", CAP_NET_ADMIN),
            Some(false)
        );
        assert_eq!(bounding_has("CapEff:\t0\n", CAP_NET_ADMIN), None);
    }
}
