//! Container networking through wrend end to end: Debian's CNI plugins
//! (bridge, host-local, portmap, firewall) driven by wren's network helper,
//! published TCP and UDP ports (and port ranges), peers by name, host and none, teardown
//! after wrend was SIGKILLed, addresses kept across restarts, bad input
//! that must leave nothing behind, and wrend serving other requests while
//! a (deliberately slow) plugin runs.
//!
//! Every test runs its private wrend inside a network namespace the test
//! made ([`Wrend::start_in_netns`]), so bridges, veths and iptables rules
//! never reach the host's; traffic goes only to that namespace's 127.0.0.1
//! and to the containers' own addresses. Needs root, busybox-static and
//! containernetworking-plugins (/usr/lib/cni); says so and skips otherwise.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use wren_tests::wrend::{name, Wrend};
use wren_tests::{require_root, skip, spawn_registered, unregister, wait_for, Bundle, Skip};

fn ready(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    for p in ["bridge", "host-local", "portmap", "firewall"] {
        if !Path::new("/usr/lib/cni").join(p).exists() {
            skip(test, Skip::Missing(format!("CNI plugin /usr/lib/cni/{p}")));
            return false;
        }
    }
    true
}

/// A busybox rootfs with /www/index.html saying `body`.
fn web_rootfs(body: &str) -> Bundle {
    let b = Bundle::busybox(&["true"]);
    std::fs::create_dir_all(b.rootfs().join("www")).unwrap();
    std::fs::write(b.rootfs().join("www/index.html"), body).unwrap();
    b
}

/// GET / on 127.0.0.1:`port` of wrend's namespace; the body, or "" on failure.
fn http_get(w: &Wrend, port: u16) -> String {
    w.on_netns(move || wren_tests::http_body(port))
}

fn get_until(w: &Wrend, port: u16, want: &str) -> bool {
    wait_for(10, || http_get(w, port).contains(want))
}

/// What a container may leave in wrend's namespace: link names,
/// addresses, iptables rules and the nft ruleset (counters dropped).
fn net_state(w: &Wrend) -> String {
    let mut s = String::new();
    let text = |args: &[&str]| String::from_utf8_lossy(&w.in_netns(args).stdout).into_owned();
    for l in text(&["ip", "-o", "link"]).lines() {
        s.push_str(l.split(':').nth(1).unwrap_or_default().trim());
        s.push('\n');
    }
    for l in text(&["ip", "-o", "addr"]).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        s.push_str(&format!(
            "{} {}\n",
            f.get(1).unwrap_or(&""),
            f.get(3).unwrap_or(&"")
        ));
    }
    for l in text(&["iptables-save"])
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        s.push_str(l.split(" [").next().unwrap_or(l));
        s.push('\n');
    }
    for l in text(&["nft", "list", "ruleset"]).lines() {
        let l = match l.find("counter packets") {
            Some(i) => &l[..i],
            None => l,
        };
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Nothing of a container that failed to be made: no record, state,
/// network namespace, CNI cache or network membership (other containers
/// may run meanwhile, so [`Wrend::assert_clean`]'s mount check is not used).
fn assert_nothing_of(w: &Wrend, n: &str) {
    let root = w.root.path();
    for p in [
        root.join("lib/containers").join(n),
        root.join("run/containers").join(n),
        root.join("run/runtime").join(n),
        root.join("run/netns").join(n),
    ] {
        assert!(!p.exists(), "{} left", p.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("/netns/{n} ")),
        "netns mount of {n} left"
    );
    for net in std::fs::read_dir(root.join("lib/networks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let m = net.path().join("members").join(format!("{n}.json"));
        assert!(!m.exists(), "{} left", m.display());
    }
}

fn run_web(w: &Wrend, r: &str, n: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--rootfs", r];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[n, "--", "httpd", "-f", "-p", "80", "-h", "/www"]);
    w.ok(&args);
    w.wait_status(n, "running", 10);
}

#[test]
fn published_port_reaches_httpd_and_peers_find_it_by_name() {
    if !ready("published_port_reaches_httpd_and_peers_find_it_by_name") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("hello from web\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let web = name("web");
    run_web(
        &w,
        r,
        &web,
        &[
            "-p",
            "127.0.0.1:18080:80",
            "--network-alias",
            "www.internal",
        ],
    );
    assert!(get_until(&w, 18080, "hello from web"), "{}", w.log());
    let i = w.inspect(&web);
    assert_eq!(i["network"], "bridge");
    assert_eq!(i["ports"], serde_json::json!(["127.0.0.1:18080:80/tcp"]));
    let ip = i["ip_address"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.89.0."), "{i}");

    // A second container reaches it by name, through its /etc/hosts.
    let cl = name("client");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--dns-search",
        "lan.example",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "host.docker.internal:host-gateway",
        &cl,
        "--",
        "sleep",
        "1000",
    ]);
    // --dns-search and --dns-option replace the host's lines, through the
    // network helper's files.
    let resolv = w.ok(&["exec", &cl, "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.ends_with("search lan.example\noptions ndots:3\n"),
        "{resolv}"
    );
    assert_eq!(resolv.matches("search ").count(), 1, "{resolv}");
    let hosts = w.ok(&["exec", &cl, "--", "cat", "/etc/hosts"]);
    // host-gateway: the host's address on the container's network (the
    // bridge's), where the host's own services answer.
    assert!(
        hosts.contains("10.89.0.1\thost.docker.internal\n"),
        "{hosts}"
    );
    let host_web = w.on_netns(|| std::net::TcpListener::bind("10.89.0.1:18099").unwrap());
    let served = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = host_web.accept().unwrap();
        let mut req = [0u8; 512];
        let _ = c.read(&mut req);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nfrom host\r\n");
    });
    let body = w.ok(&[
        "exec",
        &cl,
        "--",
        "wget",
        "-qO-",
        "http://host.docker.internal:18099/",
    ]);
    assert_eq!(body, "from host\r\n");
    served.join().unwrap();
    let body = w.ok(&["exec", &cl, "--", "wget", "-qO-", &format!("http://{web}/")]);
    assert_eq!(body, "hello from web\n");
    // And by its --network-alias.
    assert!(
        hosts.contains(&format!("{ip}\t{web} www.internal\n")),
        "{hosts}"
    );
    let body = w.ok(&["exec", &cl, "--", "wget", "-qO-", "http://www.internal/"]);
    assert_eq!(body, "hello from web\n");
    // And the first one learned the second's name too.
    let hosts = w.ok(&["exec", &web, "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("\t{cl}\n")), "{hosts}");
    assert_eq!(w.ok(&["exec", &cl, "--", "hostname"]).trim(), cl);
    w.ok(&["rm", "-f", &web, &cl]);
    w.assert_clean(&web);
    w.assert_clean(&cl);
    assert_eq!(http_get(&w, 18080), "");
}

#[test]
fn port_ranges_publish_each_port_and_a_host_range_takes_a_free_one() {
    if !ready("port_ranges_publish_each_port_and_a_host_range_takes_a_free_one") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("from the range\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();

    // Two container ports from two host ports, as Docker's `A-B:C-D`.
    let pair = name("pair");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "127.0.0.1:18110-18111:80-81",
        &pair,
        "--",
        "sh",
        "-c",
        "httpd -p 80 -h /www; exec httpd -f -p 81 -h /www",
    ]);
    w.wait_status(&pair, "running", 10);
    assert_eq!(
        w.inspect(&pair)["ports"],
        serde_json::json!(["127.0.0.1:18110:80/tcp", "127.0.0.1:18111:81/tcp"])
    );
    assert!(get_until(&w, 18110, "from the range"), "{}", w.log());
    assert!(get_until(&w, 18111, "from the range"), "{}", w.log());
    // `wren port`, as Docker prints it: all, then one container port.
    assert_eq!(
        w.ok(&["port", &pair]),
        "80/tcp -> 127.0.0.1:18110\n81/tcp -> 127.0.0.1:18111\n"
    );
    assert_eq!(w.ok(&["port", &pair, "81/tcp"]), "127.0.0.1:18111\n");
    let e = w.fails(&["port", &pair, "82"]);
    assert!(e.contains(&pair) && e.contains("no port 82"), "{e}");
    let e = w.fails(&["port", &pair, "80/sctp"]);
    assert!(e.contains("80/sctp") && e.contains("PORT/tcp|udp"), "{e}");

    // A host range for one container port: the first free port of it.
    // 18110-18111 are published above and 18112 is held by a host process.
    let holder = w.on_netns(|| std::net::TcpListener::bind("127.0.0.1:18112").unwrap());
    let one = name("one");
    run_web(&w, r, &one, &["-p", "127.0.0.1:18110-18115:80"]);
    assert_eq!(
        w.inspect(&one)["ports"],
        serde_json::json!(["127.0.0.1:18113:80/tcp"])
    );
    assert!(get_until(&w, 18113, "from the range"), "{}", w.log());
    let base = net_state(&w);
    assert!(base.contains("18113"), "{base}");

    // A range with no free port left, and one host port given twice: each
    // refused by name, nothing made.
    let full = name("full");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "127.0.0.1:18110-18112:80",
        &full,
        "--",
        "true",
    ]);
    assert!(
        e.contains("127.0.0.1:18110-18112:80/tcp") && e.contains("no port of the range is free"),
        "{e}"
    );
    assert_nothing_of(&w, &full);
    let twice = name("twice");
    let e = w.fails(&[
        "run", "-d", "--rootfs", r, "-p", "18120:80", "-p", "18120:81", &twice, "--", "true",
    ]);
    assert!(e.contains("host port 18120/tcp is given twice"), "{e}");
    assert_nothing_of(&w, &twice);
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "18130-18132:80-81",
        &name("odd"),
        "--",
        "true",
    ]);
    assert!(e.contains("differ in length"), "{e}");
    assert_eq!(net_state(&w), base);

    // Each start picks from the range again: the last pick first while it
    // is free (a restarted container keeps its port), another once
    // something else holds it (as Docker). The request keeps the range.
    w.ok(&["stop", "-t", "1", &one]);
    w.wait_status(&one, "stopped", 10);
    let held = w.on_netns(|| std::net::TcpListener::bind("127.0.0.1:18113").unwrap());
    w.ok(&["start", &one]);
    w.wait_status(&one, "running", 10);
    assert_eq!(
        w.inspect(&one)["ports"],
        serde_json::json!(["127.0.0.1:18114:80/tcp"])
    );
    assert!(get_until(&w, 18114, "from the range"), "{}", w.log());
    w.ok(&["stop", "-t", "1", &one]);
    w.wait_status(&one, "stopped", 10);
    drop(held);
    w.ok(&["start", &one]);
    w.wait_status(&one, "running", 10);
    assert_eq!(
        w.inspect(&one)["ports"],
        serde_json::json!(["127.0.0.1:18114:80/tcp"]),
        "the last pick is taken again while it is free"
    );
    assert!(get_until(&w, 18114, "from the range"), "{}", w.log());
    let request = std::fs::read_to_string(
        w.root
            .path()
            .join("lib/containers")
            .join(&one)
            .join("net/config.json"),
    )
    .expect("the network request");
    assert!(request.contains("18115"), "the range is kept: {request}");
    drop(holder);

    w.ok(&["rm", "-f", &one]);
    assert_nothing_of(&w, &one);
    let after = net_state(&w);
    assert!(
        !after.contains("18113") && !after.contains("18114") && after.contains("18111"),
        "{after}"
    );
    w.ok(&["rm", "-f", &pair]);
    w.assert_clean(&pair);
}

#[test]
fn udp_port_is_published() {
    if !ready("udp_port_is_published") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("");
    let r = b.rootfs();
    let n = name("udp");
    // busybox has no UDP server: the container's own UDP counters show the
    // datagrams arrive in its namespace (to a port nothing listens on).
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r.to_str().unwrap(),
        "-p",
        "127.0.0.1:15353:5353/udp",
        &n,
        "--",
        "sleep",
        "1000",
    ]);
    w.wait_status(&n, "running", 10);
    let no_ports = || -> u64 {
        let snmp = w.ok(&["exec", &n, "--", "cat", "/proc/net/snmp"]);
        let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
        let names: Vec<&str> = udp[0].split_whitespace().collect();
        let vals: Vec<&str> = udp[1].split_whitespace().collect();
        let i = names.iter().position(|n| *n == "NoPorts").unwrap();
        vals[i].parse().unwrap()
    };
    let before = no_ports();
    w.on_netns(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..3 {
            s.send_to(b"ping-over-udp\n", "127.0.0.1:15353").unwrap();
        }
    });
    let got = wait_for(5, || no_ports() >= before + 3);
    assert!(
        got,
        "datagrams did not reach the container ({before} -> {})",
        no_ports()
    );
    // Another published UDP port (nothing mapped) does not reach it.
    let now = no_ports();
    w.on_netns(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = s.send_to(b"x", "127.0.0.1:15354");
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(no_ports(), now);
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn host_and_none_networks() {
    if !ready("host_and_none_networks") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let ours = std::fs::read_link(w.netns().unwrap()).unwrap();
    let ours = ours.to_str().unwrap();
    // host: wrend's own namespace.
    let h = name("host");
    let out = w.ok(&[
        "run",
        "--rm",
        "--rootfs",
        r,
        "--network",
        "host",
        &h,
        "--",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(out.trim(), ours);
    // none: a namespace of its own with only lo, up.
    let n = name("none");
    let out = w.ok(&[
        "run",
        "--rm",
        "--rootfs",
        r,
        "--network",
        "none",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        ".",
        "--dns-opt",
        "timeout:1",
        "--add-host",
        "db:192.0.2.7",
        &n,
        "--",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; ip -o link | wc -l; ip -o link show lo; \
         cat /etc/resolv.conf /etc/hosts",
    ]);
    let mut lines = out.lines();
    assert_ne!(lines.next(), Some(ours), "{out}");
    assert_eq!(lines.next(), Some("1"), "{out}");
    assert!(out.contains(",UP"), "{out}");
    assert!(out.contains("nameserver 192.0.2.53\n"), "{out}");
    assert!(out.contains("options timeout:1\n"), "{out}");
    assert!(!out.contains("search "), "{out}");
    assert!(out.contains("192.0.2.7\tdb\n"), "{out}");
    // A bad domain or option is named; nothing is made.
    for (flag, value, want) in [
        (
            "--dns-search",
            "bad_domain!",
            "--dns-search \"bad_domain!\"",
        ),
        ("--dns-option", "two words", "--dns-option \"two words\""),
        ("--add-host", "h:host-gateway", "has no way to the host"),
    ] {
        let bad = name("baddns");
        let e = w.fails(&[
            "run",
            "--rootfs",
            r,
            "--network",
            "none",
            flag,
            value,
            &bad,
            "--",
            "true",
        ]);
        assert!(e.contains(want), "{e}");
        assert_eq!(w.status(&bad), "");
    }
    // -p makes no sense without a network of its own.
    let e = w.fails(&[
        "run",
        "--rootfs",
        r,
        "--network",
        "host",
        "-p",
        "1:1",
        &name("x"),
    ]);
    assert!(e.contains("cannot be published"), "{e}");
}

#[test]
fn wrend_killed_and_restarted_then_rm_removes_every_rule_and_interface() {
    if !ready("wrend_killed_and_restarted_then_rm_removes_every_rule_and_interface") {
        return;
    }
    let mut w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("still here\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let before_net = net_state(&w);
    w.ok(&["network", "create", "--subnet", "10.99.5.0/24", "svc"]);
    // A first container makes what the network shares (bridge, the
    // portmap and firewall plugins' top chains); what it removes is
    // compared against that.
    let warm = name("kwarm");
    run_web(
        &w,
        r,
        &warm,
        &["--network", "svc", "-p", "127.0.0.1:18081:80"],
    );
    w.ok(&["rm", "-f", &warm]);
    let base = net_state(&w);

    let web = name("kweb");
    run_web(
        &w,
        r,
        &web,
        &[
            "--network",
            "svc",
            "--restart",
            "always",
            "-p",
            "127.0.0.1:18082:80",
        ],
    );
    assert!(get_until(&w, 18082, "still here"));
    assert!(w.inspect(&web)["ip_address"]
        .as_str()
        .unwrap()
        .starts_with("10.99.5."));
    assert_ne!(net_state(&w), base, "the container added nothing?");

    // A second one without published ports (portmap's CHECK fails for an
    // IPv4-only mapping: containernetworking/plugins#819).
    let plain = name("plain");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "svc",
        &plain,
        "--",
        "sleep",
        "1000",
    ]);

    w.kill9();
    w.restart();
    w.wait_status(&web, "running", 10);
    assert!(get_until(&w, 18082, "still here"), "{}", w.log());
    // CNI CHECK of an attachment, from its cache, agrees.
    let root = w.root.path();
    let (lib, run) = (root.join("lib"), root.join("run"));
    let wren = wren_tests::bin("wren");
    let check = w.in_netns(&[
        wren.to_str().unwrap(),
        "network",
        "check",
        "--records",
        lib.to_str().unwrap(),
        "--state",
        run.to_str().unwrap(),
        &plain,
    ]);
    assert!(
        check.status.success(),
        "CHECK: {}",
        wren_tests::text(&check.stderr)
    );
    w.ok(&["rm", "-f", &plain]);

    let e = w.fails(&["network", "rm", "svc"]);
    assert!(
        e.contains("network svc is in use by") && e.contains(&web),
        "{e}"
    );
    w.ok(&["rm", "-f", &web]);
    w.assert_clean(&web);
    assert_eq!(net_state(&w), base);
    let root = w.root.path();
    let leases: Vec<_> = std::fs::read_dir(root.join("lib/networks/svc/ipam/svc"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    assert!(!root.join("run/netns").join(&web).exists());
    // The network goes with its bridge (`network rm` deletes it where the
    // CLI runs: here, wrend's namespace, as on a host where both share one).
    let before_bridge = link_names(&w);
    assert!(
        before_bridge.iter().any(|l| l.starts_with("wren-")),
        "{before_bridge:?}"
    );
    let rm = wren_in_netns(&w, &["network", "rm", "svc"]);
    assert!(rm.status.success(), "{}", wren_tests::text(&rm.stderr));
    assert_eq!(link_names(&w), link_names_of(&before_net));
}

/// A container started at wrend's boot gets its network as a restart does
/// (the helper beside the loop): after a simulated reboot (wrend and the
/// shim of a created `--start-at-boot` container killed, its attachment
/// left over) it runs and answers on its published port; `rm` then
/// leaves the namespace as it was.
#[test]
fn a_container_started_at_boot_gets_its_network() {
    if !ready("a_container_started_at_boot_gets_its_network") {
        return;
    }
    let mut w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("booted\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let warm = name("bwarm");
    run_web(&w, r, &warm, &["-p", "127.0.0.1:18093:80"]);
    w.ok(&["rm", "-f", &warm]);
    let base = net_state(&w);

    let c = name("booted");
    w.ok(&[
        "create",
        "--start-at-boot",
        "-p",
        "127.0.0.1:18094:80",
        "--rootfs",
        r,
        &c,
        "--",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    assert_eq!(w.status(&c), "created");
    w.kill9();
    w.kill_shims(&c);
    w.restart();
    w.wait_status(&c, "running", 15);
    assert!(get_until(&w, 18094, "booted"), "{}", w.log());
    w.ok(&["rm", "-f", &c]);
    w.assert_clean(&c);
    assert_eq!(net_state(&w), base);
}

/// The interface names in wrend's namespace.
fn link_names(w: &Wrend) -> Vec<String> {
    let out = w.in_netns(&["ip", "-o", "link"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect()
}

/// The interface names of a [`net_state`] (its first lines).
fn link_names_of(state: &str) -> Vec<String> {
    state
        .lines()
        .take_while(|l| !l.contains(' ') && !l.is_empty())
        .map(|n| n.split('@').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_restarted_container_keeps_its_address() {
    if !ready("a_restarted_container_keeps_its_address") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("");
    let r = b.rootfs();
    let n = name("flappy");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r.to_str().unwrap(),
        "--restart",
        "always",
        &n,
        "--",
        "sh",
        "-c",
        "echo at $(ip -o -4 addr show eth0 | awk '{print $4}') $(cat /sys/class/net/eth0/address); sleep 1",
    ]);
    assert!(
        wait_for(20, || w.inspect(&n)["restart_count"].as_u64() >= Some(2)),
        "no restarts: {}",
        w.log()
    );
    let logs = w.ok(&["logs", &n]);
    // The address and the MAC address: the same MAC behind the same
    // address keeps the neighbour tables of the host and of peers right.
    let addrs: Vec<(&str, &str)> = logs
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"at")).then_some((*f.get(1)?, *f.get(2)?))
        })
        .collect();
    assert!(addrs.len() >= 2, "{logs}");
    assert!(addrs.iter().all(|a| *a == addrs[0]), "{logs}");
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn a_static_ip_is_given_kept_and_refused_when_taken() {
    if !ready("a_static_ip_is_given_kept_and_refused_when_taken") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("static\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    w.ok(&["network", "create", "--subnet", "10.99.7.0/24", "fixed"]);
    let n = name("static");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "fixed",
        "--ip",
        "10.99.7.77",
        "--restart",
        "always",
        &n,
        "--",
        "sh",
        "-c",
        "echo at $(ip -o -4 addr show eth0 | awk '{print $4}'); sleep 1",
    ]);
    assert!(
        wait_for(20, || w.inspect(&n)["restart_count"].as_u64() >= Some(2)),
        "no restarts: {}",
        w.log()
    );
    let logs = w.ok(&["logs", &n]);
    let at: Vec<&str> = logs.lines().filter(|l| l.starts_with("at ")).collect();
    assert!(
        at.len() >= 2 && at.iter().all(|l| *l == "at 10.99.7.77/24"),
        "{logs}"
    );
    // A peer finds it by name at that address.
    let peer = name("peer");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "fixed",
        &peer,
        "--",
        "sleep",
        "1000",
    ]);
    let hosts = w.ok(&["exec", &peer, "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("10.99.7.77\t{n}")), "{hosts}");

    // Taken, outside the subnet, the gateway, not IPv4, on none: each
    // refused by name, nothing of the container left.
    for (ip, net, want) in [
        (
            "10.99.7.77",
            "fixed",
            format!("--ip 10.99.7.77: in use by container {n}"),
        ),
        (
            "10.99.8.5",
            "fixed",
            "not a container address of network fixed (10.99.7.0/24".into(),
        ),
        (
            "10.99.7.1",
            "fixed",
            "not a container address of network fixed".into(),
        ),
        (
            "10.99.7.255",
            "fixed",
            "not a container address of network fixed".into(),
        ),
        (
            "fe80::1",
            "fixed",
            "--ip \"fe80::1\": not an IPv4 address".into(),
        ),
        ("10.99.7.9", "none", "gets no address of its own".into()),
    ] {
        let c = name("badip");
        let e = w.fails(&[
            "run",
            "-d",
            "--rootfs",
            r,
            "--network",
            net,
            "--ip",
            ip,
            &c,
            "--",
            "true",
        ]);
        assert!(e.contains(&want), "{ip}: {e}");
        assert_nothing_of(&w, &c);
    }
    w.ok(&["rm", "-f", &n, &peer]);
    w.assert_clean(&n);
    w.assert_clean(&peer);
    // Its address is free again.
    let again = name("again");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "fixed",
        "--ip",
        "10.99.7.77",
        &again,
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(w.inspect(&again)["ip_address"], "10.99.7.77");
    w.ok(&["rm", "-f", &again]);
    w.assert_clean(&again);
    w.ok(&["network", "rm", "fixed"]);
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    if !ready("bad_network_input_is_refused_and_leaves_nothing") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("x\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let web = name("bweb");
    run_web(&w, r, &web, &["-p", "127.0.0.1:18090:80"]);
    let base = net_state(&w);

    // A port another container publishes.
    let dup = name("dup");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "127.0.0.1:18090:80",
        &dup,
        "--",
        "true",
    ]);
    assert!(
        e.contains("18090") && e.contains(&format!("already published by container {web}")),
        "{e}"
    );
    assert_nothing_of(&w, &dup);
    // A port a process of the host holds.
    let holder = w.on_netns(|| std::net::TcpListener::bind("127.0.0.1:18091").unwrap());
    let taken = name("taken");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "127.0.0.1:18091:80",
        &taken,
        "--",
        "true",
    ]);
    assert!(e.contains("127.0.0.1:18091 is in use"), "{e}");
    drop(holder);
    assert_nothing_of(&w, &taken);
    assert_eq!(net_state(&w), base);

    // Overlapping subnet, unknown network, bad -p, network in use.
    w.ok(&["network", "create", "--subnet", "10.98.0.0/16", "big"]);
    let e = w.fails(&["network", "create", "--subnet", "10.98.7.0/24", "small"]);
    assert!(e.contains("overlaps network big"), "{e}");
    assert!(!w.root.path().join("lib/networks/small").exists());
    let lost = name("lost");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "nosuch",
        &lost,
        "--",
        "true",
    ]);
    assert!(e.contains("network nosuch not found"), "{e}");
    assert_nothing_of(&w, &lost);
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "80:x",
        &name("p"),
        "--",
        "true",
    ]);
    assert!(e.contains("-p \"80:x\""), "{e}");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network-alias",
        "not_a host",
        &name("p"),
        "--",
        "true",
    ]);
    assert!(e.contains("--network-alias \"not_a host\""), "{e}");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "none",
        "--network-alias",
        "x",
        &name("p"),
        "--",
        "true",
    ]);
    assert!(
        e.contains("--network-alias: a container on network none"),
        "{e}"
    );
    let e = w.fails(&["network", "rm", "bridge"]);
    assert!(e.contains("cannot be removed"), "{e}");
    w.ok(&["network", "rm", "big"]);
    w.ok(&["rm", "-f", &web]);
    w.assert_clean(&web);
}

#[test]
fn a_missing_cni_plugin_is_named_and_nothing_is_left() {
    if !ready("a_missing_cni_plugin_is_named_and_nothing_is_left") {
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap().to_string();
    let w = Wrend::start_in_netns(&[], &[("WREN_CNI_PATH", &path)]);
    let b = web_rootfs("");
    let r = b.rootfs();
    let base = net_state(&w);
    let n = name("noplugin");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r.to_str().unwrap(),
        &n,
        "--",
        "true",
    ]);
    assert!(
        e.contains(&format!("CNI plugin \"bridge\" not found in {path}")),
        "{e}"
    );
    w.assert_clean(&n);
    assert_nothing_of(&w, &n);
    assert_eq!(net_state(&w), base);
    assert!(
        std::fs::read_dir(w.root.path().join("run/netns")).map_or(true, |mut d| d.next().is_none())
    );
}

/// `test/exposed:1`: busybox httpd serving `page` on port 80, which it
/// exposes, with a health check that fetches it (imported again, the name
/// moves to the new image).
fn import_exposed(w: &Wrend, page: &[u8]) {
    use wren_tests::registry::{Compression, Layer, Layout};
    let base = Layer::busybox_base().finish();
    let www = Layer::new()
        .dir("www", 0o755)
        .file("www/index.html", 0o644, page)
        .finish();
    let mut layout = Layout::new();
    layout.image(
        "test/exposed:1",
        &[(&base, Compression::Gzip), (&www, Compression::None)],
        serde_json::json!({
            "Cmd": ["httpd", "-f", "-p", "80", "-h", "/www"],
            "Env": ["PATH=/bin"],
            "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/"],
                            "Interval": 200_000_000u64, "Retries": 2},
        }),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
}

#[test]
fn image_exposed_ports_are_published_by_dash_p_and_its_healthcheck_runs() {
    if !ready("image_exposed_ports_are_published_by_dash_p_and_its_healthcheck_runs") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_exposed(&w, b"from the image\n");
    let n = name("exposed");
    w.ok(&["run", "-d", "-P", "--name", &n, "test/exposed:1"]);
    w.wait_status(&n, "running", 10);
    let i = w.inspect(&n);
    let port = i["ports"][0].as_str().unwrap().to_string();
    let host: u16 = port.split(':').next().unwrap().parse().unwrap();
    assert!(host > 0 && port.ends_with(":80/tcp"), "{i}");
    assert!(get_until(&w, host, "from the image"), "{i}");
    assert!(
        wait_for(10, || w.inspect(&n)["health"]["status"] == "healthy"),
        "{}",
        w.inspect(&n)
    );
    // --no-healthcheck turns the image's check off.
    let quiet = name("quiet");
    w.ok(&[
        "run",
        "-d",
        "--no-healthcheck",
        "--network",
        "none",
        "--name",
        &quiet,
        "test/exposed:1",
    ]);
    assert!(w.inspect(&quiet)["health"].is_null());
    w.ok(&["rm", "-f", &n, &quiet]);
    w.assert_clean(&n);
    w.assert_clean(&quiet);
}

#[test]
fn a_container_that_exits_on_its_own_is_detached_once() {
    if !ready("a_container_that_exits_on_its_own_is_detached_once") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    // What the network itself keeps (bridge, shared chains) made first.
    let warm = name("xwarm");
    w.ok(&[
        "run", "--rm", "--rootfs", r, "-p", "18200:80", &warm, "--", "true",
    ]);
    let base = net_state(&w);
    let n = name("crash");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "-p",
        "18201:80",
        &n,
        "--",
        "sh",
        "-c",
        "sleep 0.5; exit 3",
    ]);
    w.wait_status(&n, "stopped", 10);
    let root = w.root.path();
    assert!(wait_for(5, || !root.join("run/netns").join(&n).exists()));
    assert!(!root
        .join("lib/containers")
        .join(&n)
        .join("net/cni-cache.json")
        .exists());
    assert!(!root
        .join(format!("lib/networks/bridge/members/{n}.json"))
        .exists());
    assert_eq!(w.inspect(&n)["ip_address"], "");
    assert_eq!(net_state(&w), base);
    // rm of the stopped container has nothing left to detach: one detach
    // in all (wrend logs each helper run at debug level).
    w.ok(&["rm", &n]);
    w.assert_clean(&n);
    assert_eq!(w.log().matches(&format!("{n}: network detach")).count(), 1);
}

#[test]
fn wrend_serves_other_requests_while_the_plugins_run() {
    if !ready("wrend_serves_other_requests_while_the_plugins_run") {
        return;
    }
    // The real plugins, the firewall made slow: 2 s before each of its
    // ADDs and DELs.
    let cni = tempfile::tempdir().unwrap();
    for p in ["bridge", "host-local", "portmap"] {
        std::os::unix::fs::symlink(Path::new("/usr/lib/cni").join(p), cni.path().join(p)).unwrap();
    }
    let slow = cni.path().join("firewall");
    std::fs::write(
        &slow,
        "#!/bin/sh\nsleep 2\nexec /usr/lib/cni/firewall \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = cni.path().to_str().unwrap().to_string();
    let w = Wrend::start_in_netns(&[], &[("WREN_CNI_PATH", &path)]);
    let b = web_rootfs("slow plugins");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    // What the network itself keeps (bridge, shared chains) made first.
    let warm = name("swarm");
    w.ok(&[
        "run", "--rm", "--rootfs", r, "-p", "18211:80", &warm, "--", "true",
    ]);
    let base = net_state(&w);

    let quick = |what: &str, args: &[&str]| {
        let t = Instant::now();
        w.ok(args);
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{what} took {:?} while a plugin ran",
            t.elapsed()
        );
    };
    let n = name("slow");
    let t = Instant::now();
    let mut run = spawn_registered(
        w.cmd()
            .args(["run", "-d", "--rootfs", r, "-p", "127.0.0.1:18210:80", &n])
            .args(["--", "httpd", "-f", "-p", "80", "-h", "/www"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(500));
    // Its firewall ADD sleeps: wrend answers meanwhile, and creates other
    // containers.
    quick("ls", &["ls"]);
    let other = name("other");
    quick(
        "run --network none",
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--rootfs",
            r,
            &other,
            "--",
            "sleep",
            "100",
        ],
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "run -d returned before its attach"
    );
    let status = run.wait().unwrap();
    unregister(run.id());
    assert!(status.success(), "run -d failed\n{}", w.log());
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert_eq!(w.status(&n), "running");
    assert!(get_until(&w, 18210, "slow plugins"), "{}", w.log());

    // rm answers only once the DEL is done (the firewall's sleeps first),
    // and wrend serves meanwhile.
    let t = Instant::now();
    let mut rm = spawn_registered(
        w.cmd()
            .args(["rm", "-f", &n])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(500));
    quick("inspect", &["inspect", &other]);
    assert!(
        rm.try_wait().unwrap().is_none(),
        "rm returned before its detach"
    );
    let status = rm.wait().unwrap();
    unregister(rm.id());
    assert!(status.success(), "rm failed\n{}", w.log());
    assert!(t.elapsed() >= Duration::from_secs(2));
    let after = net_state(&w);
    let diff: Vec<&str> = after
        .lines()
        .filter(|l| !base.lines().any(|b| b == *l))
        .chain(base.lines().filter(|b| !after.lines().any(|l| l == *b)))
        .collect();
    assert!(diff.is_empty(), "left or lost: {diff:#?}");
    w.assert_clean(&n);
    assert_nothing_of(&w, &n);
    w.ok(&["rm", "-f", &other]);
}

/// `--network container:X` and `--pid container:X`, as a VPN or a
/// debugging sidecar uses them: the joiner serves on X's published port
/// from X's address, sees X's /etc files and hostname, and (with the pid
/// namespace) X's processes. What only X can set is refused by name and
/// leaves nothing; X cannot be removed while others join it; a joiner
/// whose X is down does not start, and starts again with it; a running
/// joiner follows X into its new namespace when X starts again; at
/// wrend's boot X is started first whatever the names' order.
#[test]
fn a_container_joins_the_network_and_pid_namespace_of_another() {
    if !ready("a_container_joins_the_network_and_pid_namespace_of_another") {
        return;
    }
    let mut w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("served from the joiner\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    // The bridge and the plugins' chains stay once made: made first.
    let warm = name("jwarm");
    run_web(&w, r, &warm, &["-p", "127.0.0.1:18179:80"]);
    w.ok(&["rm", "-f", &warm]);
    let before = net_state(&w);
    // Named so that the joiner sorts first: the boot must still start X first.
    let x = name("zvpn");
    w.ok(&[
        "run",
        "-d",
        "--start-at-boot",
        "--rootfs",
        r,
        "-p",
        "127.0.0.1:18180:80",
        &x,
        "--",
        "sleep",
        "1000",
    ]);
    let j = name("aweb");
    run_web(
        &w,
        r,
        &j,
        &["--start-at-boot", "--network", &format!("container:{x}")],
    );
    assert!(
        get_until(&w, 18180, "served from the joiner"),
        "{}",
        w.log()
    );
    let xi = w.inspect(&x);
    let ji = w.inspect(&j);
    assert_eq!(ji["network"], format!("container:{x}"));
    let ip = xi["ip_address"].as_str().unwrap();
    let addrs = w.ok(&["exec", &j, "--", "ip", "-o", "-4", "addr"]);
    assert!(addrs.contains(&format!("inet {ip}/")), "{addrs}");
    assert_eq!(
        w.ok(&["exec", &j, "--", "cat", "/etc/hosts"]),
        w.ok(&["exec", &x, "--", "cat", "/etc/hosts"])
    );
    assert_eq!(w.ok(&["exec", &j, "--", "hostname"]).trim(), x);
    // X reaches the joiner's server on its own loopback.
    let body = w.ok(&["exec", &x, "--", "wget", "-qO-", "http://127.0.0.1/"]);
    assert_eq!(body, "served from the joiner\n");

    // A debugging sidecar in X's pid namespace sees X's processes, and X
    // sees its own.
    use wren_tests::registry::{Compression, Layer, Layout};
    let mut layout = Layout::new();
    let base = Layer::busybox_base().finish();
    layout.image(
        "test/dbg:1",
        &[(&base, Compression::Gzip)],
        serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
    let dbg = name("dbg");
    w.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--pid",
        &format!("container:{x}"),
        "--name",
        &dbg,
        "test/dbg:1",
        "sleep",
        "1001",
    ]);
    let ps = w.ok(&["exec", &dbg, "--", "ps"]);
    assert!(
        ps.contains("sleep 1000") && ps.contains("sleep 1001"),
        "{ps}"
    );
    let ps = w.ok(&["exec", &x, "--", "ps"]);
    assert!(ps.contains("sleep 1001"), "{ps}");
    assert_eq!(w.inspect(&dbg)["network"], "none");

    // What is X's to set, refused by name; nothing is left of the attempt.
    let bad = name("bad");
    let join = format!("container:{x}");
    for (extra, want) in [
        (
            vec!["-p", "127.0.0.1:18181:80"],
            "-p/--publish cannot go with --network",
        ),
        (
            vec!["--hostname", "h"],
            "--hostname cannot go with --network",
        ),
        (vec!["--dns", "10.0.0.9"], "--dns cannot go with --network"),
        (
            vec!["--add-host", "a:10.0.0.9"],
            "--add-host cannot go with --network",
        ),
        (vec!["--ip", "10.89.0.77"], "--ip cannot go with --network"),
        (
            vec!["--sysctl", "net.ipv4.ip_forward=1"],
            "shares that container's network",
        ),
    ] {
        let mut args = vec!["run", "-d", "--network", &join];
        args.extend(extra);
        args.extend(["--name", bad.as_str(), "test/dbg:1", "true"]);
        let e = w.fails(&args);
        assert!(e.contains(want), "{args:?}: {e}");
        assert_nothing_of(&w, &bad);
    }
    for mode in [
        ["--network", "container:nosuch"],
        ["--pid", "container:nosuch"],
    ] {
        let e = w.fails(&[
            "run",
            "-d",
            mode[0],
            mode[1],
            "--name",
            &bad,
            "test/dbg:1",
            "true",
        ]);
        assert!(e.contains("no such container nosuch"), "{e}");
        assert_nothing_of(&w, &bad);
    }
    let e = w.fails(&[
        "run",
        "-d",
        "--pid",
        "container:",
        "--name",
        &bad,
        "test/dbg:1",
    ]);
    assert!(e.contains("want container:NAME"), "{e}");
    let e = w.fails(&["run", "-d", "--ipc", &join, "--name", &bad, "test/dbg:1"]);
    assert!(e.contains("--ipc"), "{e}");

    // X stays while others join it.
    let e = w.fails(&["rm", "-f", &x]);
    assert!(
        e.contains(&j) && e.contains(&dbg) && e.contains("remove them first"),
        "{e}"
    );
    assert_eq!(w.status(&x), "running");
    w.ok(&["rm", "-f", &dbg]);
    assert_nothing_of(&w, &dbg);

    // A joiner does not start while X is down, and starts with it.
    w.ok(&["stop", "-t", "1", &j]);
    w.ok(&["stop", "-t", "1", &x]);
    let e = w.fails(&["start", &j]);
    assert!(
        e.contains(&format!(
            "joins the network namespace of {x}, which is not running"
        )),
        "{e}"
    );
    assert_eq!(w.status(&j), "stopped");
    w.ok(&["start", &x]);
    w.ok(&["start", &j]);
    assert!(
        get_until(&w, 18180, "served from the joiner"),
        "{}",
        w.log()
    );

    // X started again while the joiner runs (no restart policy): the
    // joiner is restarted into X's new namespace, not left in the old.
    let old_pid = w.inspect(&j)["pid"].clone();
    w.ok(&["restart", "-t", "1", &x]);
    assert!(
        wait_for(10, || {
            let i = w.inspect(&j);
            i["status"] == "running" && i["pid"] != old_pid
        }),
        "{}",
        w.log()
    );
    assert!(
        get_until(&w, 18180, "served from the joiner"),
        "{}",
        w.log()
    );
    let events = w.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "-f",
        "event=/container/rejoin",
    ]);
    assert!(
        events.contains(&format!("/container/rejoin {j} ")),
        "{events}"
    );

    // A host's reboot: both were made to start at boot; X goes first.
    w.kill9();
    w.kill_shims(&j);
    w.kill_shims(&x);
    w.restart();
    w.wait_status(&x, "running", 15);
    w.wait_status(&j, "running", 15);
    assert!(
        get_until(&w, 18180, "served from the joiner"),
        "{}",
        w.log()
    );

    w.ok(&["rm", "-f", &j]);
    w.ok(&["rm", "-f", &x]);
    w.assert_clean(&j);
    w.assert_clean(&x);

    // A `--rm` X that others join is kept when it exits (they still hold
    // it), and goes with the last of them; one started again meanwhile
    // stays.
    let rx = name("zrm");
    w.ok(&[
        "run", "-d", "--rm", "--rootfs", r, &rx, "--", "sleep", "1000",
    ]);
    let joiner = |n: &str| {
        w.ok(&[
            "run",
            "-d",
            "--rootfs",
            r,
            "--network",
            &format!("container:{rx}"),
            n,
            "--",
            "sleep",
            "1000",
        ]);
    };
    let (j1, j2) = (name("arj1"), name("arj2"));
    joiner(&j1);
    joiner(&j2);
    w.ok(&["stop", "-t", "1", &rx]);
    w.wait_status(&rx, "stopped", 10);
    w.ok(&["rm", "-f", &j1]);
    assert_eq!(w.status(&rx), "stopped", "{}", w.log());
    w.ok(&["rm", "-f", &j2]);
    assert!(wait_for(10, || w.status(&rx).is_empty()), "{}", w.log());
    w.assert_clean(&rx);
    // Started again before its joiner goes: it stays.
    w.ok(&[
        "run", "-d", "--rm", "--rootfs", r, &rx, "--", "sleep", "1000",
    ]);
    joiner(&j1);
    w.ok(&["stop", "-t", "1", &rx]);
    w.wait_status(&rx, "stopped", 10);
    w.ok(&["start", &rx]);
    w.wait_status(&rx, "running", 10);
    w.ok(&["rm", "-f", &j1]);
    assert_eq!(w.status(&rx), "running");
    w.ok(&["rm", "-f", &rx]);
    for n in [&rx, &j1, &j2] {
        w.assert_clean(n);
    }
    assert_eq!(net_state(&w), before);
}

/// `wren --root <w's root> ARGS` in wrend's network namespace: the CLI
/// commands that make or remove bridges and rules run where wrend's are.
fn wren_in_netns(w: &Wrend, args: &[&str]) -> std::process::Output {
    let wren = wren_tests::bin("wren");
    let root = w.root.path();
    let mut all = vec![wren.to_str().unwrap(), "--root", root.to_str().unwrap()];
    all.extend_from_slice(args);
    w.in_netns(&all)
}

/// The addresses (`A.B.C.D/LEN`) of interface `dev` inside container `n`.
fn addrs_of(w: &Wrend, n: &str, dev: &str) -> String {
    w.ok(&[
        "exec",
        n,
        "--",
        "sh",
        "-c",
        &format!("ip -o -4 addr show {dev} | awk '{{print $4}}'"),
    ])
    .trim()
    .to_string()
}

/// A container on two networks (a proxy in front of a service that only
/// the back network reaches), as compose's front/back split makes it:
/// one interface per network, the default route and published ports on
/// the first, peers on each network find it by name (and by the aliases
/// given there) at its address on that network, and only peers of a
/// network it shares are in its /etc/hosts. Both addresses are kept
/// across a restart; the network it is a second member of cannot be
/// removed; bad combinations are refused, and an attach that fails on its
/// second network undoes the first. Everything goes with `rm`.
#[test]
fn a_container_on_two_networks_is_found_on_each_and_leaves_nothing() {
    if !ready("a_container_on_two_networks_is_found_on_each_and_leaves_nothing") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("from the proxy\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let before = link_names(&w);
    w.ok(&["network", "create", "--subnet", "10.77.1.0/24", "front"]);
    w.ok(&["network", "create", "--subnet", "10.77.2.0/24", "back"]);
    // A first container on both makes what the networks share (bridges,
    // the plugins' top chains); what the others remove is compared
    // against that.
    let warm = name("mwarm");
    run_web(
        &w,
        r,
        &warm,
        &[
            "--network",
            "front",
            "--network",
            "back",
            "-p",
            "127.0.0.1:18181:80",
        ],
    );
    w.ok(&["rm", "-f", &warm]);
    let base = net_state(&w);
    let api = name("mapi");
    run_web(&w, r, &api, &["--network", "back"]);
    let proxy = name("mproxy");
    run_web(
        &w,
        r,
        &proxy,
        &[
            "--network",
            "front",
            "--network",
            "name=back,alias=gw,ip=10.77.2.50",
            "-p",
            "127.0.0.1:18180:80",
            "--restart",
            "always",
        ],
    );
    let client = name("mclient");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "front",
        &client,
        "--",
        "sleep",
        "1000",
    ]);
    w.wait_status(&client, "running", 10);

    let i = w.inspect(&proxy);
    let front_ip = i["ip_address"].as_str().unwrap().to_string();
    assert!(front_ip.starts_with("10.77.1."), "{i}");
    assert_eq!(i["network"], "front");
    assert_eq!(
        i["networks"],
        serde_json::json!([
            {"name": "front", "ip_address": front_ip},
            {"name": "back", "ip_address": "10.77.2.50", "aliases": ["gw"]}
        ])
    );
    // One interface per network; the default route is the first's.
    assert_eq!(addrs_of(&w, &proxy, "eth0"), format!("{front_ip}/24"));
    assert_eq!(addrs_of(&w, &proxy, "eth1"), "10.77.2.50/24");
    let routes = w.ok(&["exec", &proxy, "--", "ip", "route"]);
    let defaults: Vec<&str> = routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .collect();
    assert_eq!(defaults, ["default via 10.77.1.1 dev eth0 "], "{routes}");
    // Published on the first network.
    assert!(get_until(&w, 18180, "from the proxy"), "{}", w.log());

    // The proxy reaches the back service by name; the back service
    // finds the proxy at its back address, by name and alias; the front
    // client finds the proxy at its front address, and not the back
    // service at all.
    let body = w.ok(&[
        "exec",
        &proxy,
        "--",
        "wget",
        "-qO-",
        &format!("http://{api}/"),
    ]);
    assert_eq!(body, "from the proxy\n");
    let api_hosts = w.ok(&["exec", &api, "--", "cat", "/etc/hosts"]);
    assert!(
        api_hosts.contains(&format!("10.77.2.50\t{proxy} gw\n")),
        "{api_hosts}"
    );
    assert!(!api_hosts.contains(&front_ip), "{api_hosts}");
    let body = w.ok(&["exec", &api, "--", "wget", "-qO-", "http://gw/"]);
    assert_eq!(body, "from the proxy\n");
    let client_hosts = w.ok(&["exec", &client, "--", "cat", "/etc/hosts"]);
    assert!(
        client_hosts.contains(&format!("{front_ip}\t{proxy}\n")),
        "{client_hosts}"
    );
    assert!(!client_hosts.contains(&api), "{client_hosts}");
    // Its own file: both its addresses, then the peers of both networks.
    let own = w.ok(&["exec", &proxy, "--", "cat", "/etc/hosts"]);
    let first = own.find(&format!("{front_ip}\t{proxy}\n"));
    let second = own.find(&format!("10.77.2.50\t{proxy} gw\n"));
    assert!(first.is_some() && second > first, "{own}");
    assert!(own.contains(&format!("\t{api}\n")) && own.contains(&format!("\t{client}\n")));

    // The networks are isolated as Docker's: the front client does not
    // reach the back service even by its address (routed through the
    // host), while the proxy reaches it on its own back interface.
    let api_ip = w.inspect(&api)["ip_address"].as_str().unwrap().to_string();
    let probe = format!(
        "timeout 3 wget -qO- http://{api_ip}/ >/dev/null 2>&1 && echo reached || echo blocked"
    );
    assert_eq!(
        w.ok(&["exec", &client, "--", "sh", "-c", &probe]).trim(),
        "blocked"
    );
    assert_eq!(
        w.ok(&["exec", &proxy, "--", "sh", "-c", &probe]).trim(),
        "reached"
    );

    // `network rm` of its second network is refused, naming it.
    let e = w.fails(&["network", "rm", "back"]);
    assert!(e.contains("in use") && e.contains(&proxy), "{e}");

    // A restart keeps both addresses, and the peers' files follow.
    let pid = w.inspect(&proxy)["pid"].as_u64();
    w.ok(&["restart", &proxy]);
    assert!(wait_for(10, || {
        let i = w.inspect(&proxy);
        i["status"] == "running" && i["pid"].as_u64() != pid
    }));
    let i = w.inspect(&proxy);
    assert_eq!(i["ip_address"], front_ip.as_str(), "{i}");
    assert_eq!(i["networks"][1]["ip_address"], "10.77.2.50", "{i}");
    assert_eq!(addrs_of(&w, &proxy, "eth1"), "10.77.2.50/24");
    assert!(get_until(&w, 18180, "from the proxy"), "{}", w.log());
    let body = w.ok(&["exec", &api, "--", "wget", "-qO-", "http://gw/"]);
    assert_eq!(body, "from the proxy\n");

    // `network connect` puts the running client on the back network at
    // once (a new interface, found by its peers there by name and alias);
    // `disconnect` takes it off again; the first network stays.
    let got = w.ok(&["network", "connect", "--alias", "cl2", "back", &client]);
    let back_ip = got.trim().to_string();
    assert!(back_ip.starts_with("10.77.2."), "{got}");
    assert_eq!(addrs_of(&w, &client, "eth1"), format!("{back_ip}/24"));
    let body = w.ok(&[
        "exec",
        &client,
        "--",
        "wget",
        "-qO-",
        &format!("http://{api}/"),
    ]);
    assert_eq!(body, "from the proxy\n");
    let api_hosts = w.ok(&["exec", &api, "--", "cat", "/etc/hosts"]);
    assert!(
        api_hosts.contains(&format!("{back_ip}\t{client} cl2\n")),
        "{api_hosts}"
    );
    assert_eq!(
        w.inspect(&client)["networks"][1]["ip_address"],
        back_ip.as_str()
    );
    let e = w.fails(&["network", "connect", "back", &client]);
    assert!(e.contains("is on network back already"), "{e}");
    let e = w.fails(&["network", "disconnect", "front", &proxy]);
    assert!(e.contains("is the first network"), "{e}");
    let e = w.fails(&["network", "connect", "back", "no-such-container"]);
    assert!(e.contains("no container no-such-container"), "{e}");
    w.ok(&["network", "disconnect", "back", &client]);
    assert_eq!(addrs_of(&w, &client, "eth1"), "");
    assert!(!w
        .ok(&["exec", &api, "--", "cat", "/etc/hosts"])
        .contains(&client));
    assert!(!w
        .ok(&["exec", &client, "--", "cat", "/etc/hosts"])
        .contains(&api));
    assert_eq!(w.inspect(&client)["networks"][1], serde_json::Value::Null);
    // A stopped container gets the network from its next start.
    w.ok(&["stop", &client]);
    assert_eq!(w.ok(&["network", "connect", "back", &client]), "");
    w.ok(&["start", &client]);
    w.wait_status(&client, "running", 10);
    assert!(addrs_of(&w, &client, "eth1").starts_with("10.77.2."));

    // Stopped, it is on no network: no addresses, gone from its peers'
    // files on both.
    w.ok(&["stop", &proxy]);
    let i = w.inspect(&proxy);
    assert_eq!(i["networks"][1]["ip_address"], "", "{i}");
    assert!(!w
        .ok(&["exec", &api, "--", "cat", "/etc/hosts"])
        .contains(&proxy));
    assert!(!w
        .ok(&["exec", &client, "--", "cat", "/etc/hosts"])
        .contains(&proxy));

    // Refused by the CLI, naming the flag: modes among several networks,
    // a network twice, a key outside the subset.
    for (args, want) in [
        (
            &["--network", "none", "--network", "front"][..],
            "cannot go with other networks",
        ),
        (
            &["--network", "front", "--network", "container:x"],
            "cannot go with other networks",
        ),
        (&["--network", "front", "--network", "front"], "given twice"),
        (
            &["--network", "front", "--network", "name=back,ip6=fd00::2"],
            "key \"ip6\"",
        ),
        (
            &["--network", "name=front,ip=10.77.1.9", "--ip", "10.77.1.8"],
            "give the address once",
        ),
        (
            &["--network", "front", "--network", "name=back,alias=-x"],
            "alias=-x",
        ),
    ] {
        let bad = name("mbad");
        let mut a = vec!["run", "-d", "--rootfs", r];
        a.extend_from_slice(args);
        a.extend_from_slice(&[&bad, "--", "true"]);
        let e = w.fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
        assert_nothing_of(&w, &bad);
    }
    // An address outside the second network: the attach fails there,
    // and the first network's attachment is undone (no lease left).
    let half = name("mhalf");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "front",
        "--network",
        "name=back,ip=10.77.9.9",
        &half,
        "--",
        "true",
    ]);
    assert!(
        e.contains("--ip 10.77.9.9") && e.contains("network back"),
        "{e}"
    );
    assert_nothing_of(&w, &half);
    let root = w.root.path();
    let leases = |net: &str| -> Vec<String> {
        std::fs::read_dir(root.join(format!("lib/networks/{net}/ipam/{net}")))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.starts_with(&half)))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(leases("front").is_empty(), "{:?}", leases("front"));

    w.ok(&["rm", "-f", &proxy, &api, &client]);
    for n in [&proxy, &api, &client] {
        w.assert_clean(n);
    }
    assert_eq!(net_state(&w), base);
    let bridges: Vec<String> = ["front", "back"]
        .iter()
        .map(|n| {
            let v: serde_json::Value =
                serde_json::from_str(&w.ok(&["network", "inspect", n])).unwrap();
            v[0]["bridge"].as_str().unwrap().to_string()
        })
        .collect();
    for net in ["front", "back"] {
        let rm = wren_in_netns(&w, &["network", "rm", net]);
        assert!(rm.status.success(), "{}", wren_tests::text(&rm.stderr));
    }
    assert_eq!(link_names(&w), before);
    // And the isolation rules of their bridges went with them.
    let rules = String::from_utf8_lossy(&w.in_netns(&["iptables-save"]).stdout).into_owned();
    for b in &bridges {
        assert!(!rules.contains(b.as_str()), "rules of {b} left:\n{rules}");
    }
}

/// `wren auto-update` makes a container again on the networks it is on
/// now: one `network connect` added since `run` (with its alias, found by
/// its peers there), and not one it was disconnected from since.
#[test]
fn auto_update_keeps_the_networks_it_was_connected_to() {
    if !ready("auto_update_keeps_the_networks_it_was_connected_to") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_exposed(&w, b"one\n");
    w.ok(&["network", "create", "--subnet", "10.77.6.0/24", "side"]);
    let app = name("uapp");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &app,
        "--label",
        "io.containers.autoupdate=local",
        "--stop-timeout",
        "1",
        "-p",
        "127.0.0.1:18195:80",
        "test/exposed:1",
    ]);
    let peer = name("upeer");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &peer,
        "--network",
        "side",
        "--no-healthcheck",
        "--stop-timeout",
        "1",
        "test/exposed:1",
    ]);
    w.ok(&["network", "connect", "--alias", "api", "side", &app]);
    let from_peer = || {
        let out = w.wren(&[
            "exec",
            &peer,
            "--",
            "timeout",
            "5",
            "wget",
            "-qO-",
            "http://api/",
        ]);
        wren_tests::text(&out.stdout)
    };
    assert_eq!(from_peer(), "one\n");

    let update = |want: &str| {
        let out = w.wren(&["auto-update", "--timeout", "20", &app]);
        let all = wren_tests::text(&out.stdout);
        assert!(
            out.status.success()
                && all
                    .lines()
                    .any(|l| l.starts_with(&app) && l.contains("true")),
            "{all}{}",
            wren_tests::text(&out.stderr)
        );
        assert!(get_until(&w, 18195, want), "{}", w.log());
    };
    import_exposed(&w, b"two\n");
    update("two");
    let i = w.inspect(&app);
    assert_eq!(i["networks"][1]["name"], "side", "{i}");
    assert_eq!(i["networks"][1]["aliases"][0], "api", "{i}");
    assert!(addrs_of(&w, &app, "eth1").starts_with("10.77.6."), "{i}");
    assert!(wait_for(10, || from_peer() == "two\n"), "{}", from_peer());

    // Disconnected since: not on it after the next update.
    w.ok(&["network", "disconnect", "side", &app]);
    import_exposed(&w, b"three\n");
    update("three");
    let i = w.inspect(&app);
    assert_eq!(i["networks"][1], serde_json::Value::Null, "{i}");
    assert_eq!(addrs_of(&w, &app, "eth1"), "");

    w.ok(&["rm", "-f", &app, &peer]);
    w.assert_clean(&app);
    w.assert_clean(&peer);
    let rm = wren_in_netns(&w, &["network", "rm", "side"]);
    assert!(rm.status.success(), "{}", wren_tests::text(&rm.stderr));
}

/// `network create --internal`, as Docker's internal networks: a member
/// has no default route and nothing of it is masqueraded, so it reaches
/// its peers and nothing beyond the subnet; a container also on another
/// network takes its way out there. Ports are not published on it.
#[test]
fn an_internal_network_has_no_way_out() {
    if !ready("an_internal_network_has_no_way_out") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    let b = web_rootfs("inside\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    w.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.77.5.0/24",
        "inner",
    ]);
    w.ok(&["network", "create", "--subnet", "10.77.6.0/24", "outer"]);
    let v: serde_json::Value =
        serde_json::from_str(&w.ok(&["network", "inspect", "inner"])).unwrap();
    assert_eq!(v[0]["internal"], true, "{v}");
    let db = name("idb");
    run_web(&w, r, &db, &["--network", "inner"]);
    // Internal first, then one with a way out: the route is the second's.
    let app = name("iapp");
    run_web(&w, r, &app, &["--network", "inner", "--network", "outer"]);
    let routes = w.ok(&["exec", &db, "--", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let routes = w.ok(&["exec", &app, "--", "ip", "route"]);
    assert!(
        routes.contains("default via 10.77.6.1 dev eth1"),
        "{routes}"
    );
    // A service on the host side, on the outer bridge's address: the app
    // reaches it through its outer interface, the internal-only member
    // has no route there.
    let listener = w.on_netns(|| std::net::TcpListener::bind("10.77.6.1:18400").unwrap());
    let served = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut req = [0u8; 512];
        let _ = c.read(&mut req);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhost\n");
    });
    let url = "http://10.77.6.1:18400/";
    assert_eq!(w.ok(&["exec", &app, "--", "wget", "-qO-", url]), "host\n");
    served.join().unwrap();
    let probe =
        format!("timeout 3 wget -qO- {url} >/dev/null 2>&1 && echo reached || echo blocked");
    assert_eq!(
        w.ok(&["exec", &db, "--", "sh", "-c", &probe]).trim(),
        "blocked"
    );
    // Peers on it still find each other.
    let body = w.ok(&["exec", &app, "--", "wget", "-qO-", &format!("http://{db}/")]);
    assert_eq!(body, "inside\n");
    // Nothing of the internal network is masqueraded.
    let nat =
        String::from_utf8_lossy(&w.in_netns(&["iptables-save", "-t", "nat"]).stdout).into_owned();
    // (The plugins' rules name their container in a comment: the app has
    // its outer network's, the internal-only member none.)
    assert!(nat.contains(app.as_str()), "{nat}");
    assert!(!nat.contains(db.as_str()), "{nat}");
    // No port is published on it; nothing is left of the attempt.
    let pub_ = name("ipub");
    let e = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--network",
        "inner",
        "-p",
        "127.0.0.1:18401:80",
        &pub_,
        "--",
        "true",
    ]);
    assert!(e.contains("network inner is internal"), "{e}");
    assert_nothing_of(&w, &pub_);
    // Connected to the outer network, the internal-only member gets its
    // way out there, at once.
    w.ok(&["network", "connect", "outer", &db]);
    let routes = w.ok(&["exec", &db, "--", "ip", "route"]);
    assert!(
        routes.contains("default via 10.77.6.1 dev eth1"),
        "{routes}"
    );
    w.ok(&["rm", "-f", &db, &app]);
    w.assert_clean(&db);
    w.assert_clean(&app);
    w.ok(&["network", "rm", "inner", "outer"]);
}

/// `network create` with Docker's flags: a gateway of its own, addresses
/// given from `--ip-range` (a container's own `--ip` outside it), the MTU
/// and bridge name as driver options, labels; each bad value refused by
/// name with nothing made, and nothing left after `network rm`.
#[test]
fn a_network_of_its_own_gateway_range_mtu_and_bridge() {
    if !ready("a_network_of_its_own_gateway_range_mtu_and_bridge") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    // A bridge someone else uses (docker0's case): it has an address.
    for args in [
        &["ip", "link", "add", "br-busy", "type", "bridge"][..],
        &["ip", "addr", "add", "10.99.0.1/24", "dev", "br-busy"],
    ] {
        assert!(w.in_netns(args).status.success(), "{args:?}");
    }
    let e = w.fails(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=br-busy",
        "own",
    ]);
    assert!(
        e.contains("a bridge of that name is in use (10.99.0.1/24)"),
        "{e}"
    );
    assert!(w
        .in_netns(&["ip", "link", "del", "br-busy"])
        .status
        .success());
    let before = link_names(&w);
    let b = web_rootfs("own\n");
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    // Each refusal names its flag and leaves no network.
    for (args, want) in [
        (
            &["--gateway", "10.77.40.254"][..],
            "--gateway needs --subnet",
        ),
        (
            &["--subnet", "10.77.40.0/24", "--gateway", "10.77.41.1"],
            "--gateway 10.77.41.1: not a host address of --subnet 10.77.40.0/24",
        ),
        (
            &["--subnet", "10.77.40.0/24", "--ip-range", "10.77.41.0/28"],
            "--ip-range 10.77.41.0/28: not inside --subnet",
        ),
        (&["-o", "mtu=20"], "-o mtu=20: the MTU must be 68-65535"),
        (&["-o", "vlan=4"], "-o vlan: not an option"),
        (&["-o", "mtu"], "-o \"mtu\": want KEY=VALUE"),
        // lo is in wrend's namespace, and is no bridge.
        (
            &["-o", "com.docker.network.bridge.name=lo"],
            "an interface of that name is there already (device)",
        ),
    ] {
        let mut a = vec!["network", "create"];
        a.extend_from_slice(args);
        a.push("own");
        let e = w.fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(!w.root.path().join("lib/networks/own").exists(), "{args:?}");
    }
    w.ok(&[
        "network",
        "create",
        "--subnet",
        "10.77.40.0/24",
        "--gateway",
        "10.77.40.254",
        "--ip-range",
        "10.77.40.128/28",
        "-o",
        "mtu=1400",
        "-o",
        "com.docker.network.bridge.name=br-own",
        "--label",
        "team=edge",
        "own",
    ]);
    let v: serde_json::Value = serde_json::from_str(&w.ok(&["network", "inspect", "own"])).unwrap();
    assert_eq!(v[0]["bridge"], "br-own", "{v}");
    assert_eq!(v[0]["gateway"], "10.77.40.254", "{v}");
    assert_eq!(v[0]["ip_range"], "10.77.40.128/28", "{v}");
    assert_eq!(v[0]["mtu"], 1400, "{v}");
    assert_eq!(v[0]["labels"]["team"], "edge", "{v}");
    // The bridge's name is taken.
    let e = w.fails(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=br-own",
        "own2",
    ]);
    assert!(e.contains("network own has that bridge"), "{e}");
    // Given addresses come from the range; the route goes by the gateway;
    // the veth has the MTU.
    let web = name("oweb");
    run_web(&w, r, &web, &["--network", "own"]);
    let addr = addrs_of(&w, &web, "eth0");
    let host: u8 = addr
        .strip_prefix("10.77.40.")
        .and_then(|a| a.split('/').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("{addr}"));
    assert!((128..=143).contains(&host), "{addr}");
    let routes = w.ok(&["exec", &web, "--", "ip", "route"]);
    assert!(
        routes.contains("default via 10.77.40.254 dev eth0"),
        "{routes}"
    );
    assert_eq!(
        w.ok(&["exec", &web, "--", "cat", "/sys/class/net/eth0/mtu"])
            .trim(),
        "1400"
    );
    let br = String::from_utf8_lossy(
        &w.in_netns(&["ip", "-o", "addr", "show", "dev", "br-own"])
            .stdout,
    )
    .into_owned();
    assert!(br.contains("10.77.40.254/24"), "{br}");
    // A container's own address may lie outside the range.
    let fixed = name("ofix");
    run_web(&w, r, &fixed, &["--network", "own", "--ip", "10.77.40.5"]);
    assert!(addrs_of(&w, &fixed, "eth0").starts_with("10.77.40.5/"));
    let body = w.ok(&[
        "exec",
        &fixed,
        "--",
        "wget",
        "-qO-",
        &format!("http://{web}/"),
    ]);
    assert_eq!(body, "own\n");
    // network prune: only unused networks, by label if asked; the one in
    // use (labelled too) stays, as does the default one.
    w.ok(&["network", "create", "--label", "team=edge", "pa"]);
    w.ok(&["network", "create", "pb"]);
    let e = w.fails(&["network", "prune", "-f", "--filter", "until=1h"]);
    assert!(e.contains("only label=KEY[=VALUE]"), "{e}");
    let out = w.ok(&["network", "prune", "-f", "--filter", "label=team=edge"]);
    assert_eq!(out, "deleted network pa\n");
    let out = w.ok(&["network", "prune", "-f"]);
    assert_eq!(out, "deleted network pb\n");
    let nets = w.ok(&["network", "ls"]);
    assert!(nets.contains("own") && nets.contains("bridge"), "{nets}");
    w.ok(&["rm", "-f", &web, &fixed]);
    w.assert_clean(&web);
    w.assert_clean(&fixed);
    w.ok(&["network", "rm", "own"]);
    assert_eq!(link_names(&w), before);
    let rules = String::from_utf8_lossy(&w.in_netns(&["iptables-save"]).stdout).into_owned();
    assert!(
        !rules.contains("br-own") && !rules.contains("10.77.40."),
        "{rules}"
    );
}
