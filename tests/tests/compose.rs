//! `wren apply` / `wren down` end to end: a compose file of three
//! services (a web server with a health check and a published port, a
//! worker that waits for it to be healthy and writes into a shared named
//! volume, a cache) applied, re-applied unchanged, changed, taken down;
//! and files outside the subset refused with the key named, leaving
//! nothing. wrend runs in a network namespace of the test's own.
//!
//! Needs root, busybox-static and containernetworking-plugins.

use std::path::Path;

use serde_json::{json, Value};
use wren_tests::registry::{Compression, Layer, Layout};
use wren_tests::wrend::Wrend;
use wren_tests::{require_root, skip, text, wait_for, Skip};

fn ready(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        skip(test, Skip::Missing("CNI plugins in /usr/lib/cni".into()));
        return false;
    }
    true
}

/// `test/web:1`: busybox and /www/index.html.
fn import_web(w: &Wrend) {
    import_web_page(w, b"compose web\n");
}

/// `test/web:1` with `page` as its index.html (imported again, the name
/// moves to the new image).
fn import_web_page(w: &Wrend, page: &[u8]) {
    let base = Layer::busybox_base().finish();
    let www = Layer::new()
        .dir("www", 0o755)
        .file("www/index.html", 0o644, page)
        .dir("shared", 0o755)
        .finish();
    let mut layout = Layout::new();
    layout.image(
        "test/web:1",
        &[(&base, Compression::Gzip), (&www, Compression::None)],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
}

const COMPOSE: &str = r#"
name: shop
# An extension field, merged into a service through its anchor.
x-keep-running: &keep-running
  restart: always
services:
  web:
    image: test/web:1
    hostname: webhost
    command: httpd -f -p 80 -h /www
    ports: ["127.0.0.1:${WEB_PORT:-18100}:80"]
    volumes: ["shared:/shared"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 200ms
      retries: 3
    labels:
      io.containers.autoupdate: local
  worker:
    image: test/web:1
    command: ["sh", "-c", "env > /shared/worker.env; while true; do wget -qO- http://web/ > /shared/fetched; sleep 0.3; done"]
    env_file:
      - ./common.env
      - path: ./local.env
        required: false
    environment:
      MODE: ${WORKER_MODE}
      # Unset: an empty string and a warning (not for $IN_A_COMMENT).
      NOTE: "${WREN_TEST_UNSET_NOTE}and $$literal"
    volumes:
      - type: volume
        source: shared
        target: /shared
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1m}
    <<: *keep-running
    x-owner: the shop team
    depends_on:
      web:
        condition: service_healthy
  # Made only with --profile tools (or COMPOSE_PROFILES).
  toolbox:
    image: test/web:1
    command: sleep 100000
    profiles: [tools]
  # A one-shot job: cache starts only once it has exited 0.
  migrate:
    image: test/web:1
    command: ["sh", "-c", "sleep 0.3; echo migrated > /shared/migrated"]
    volumes: ["shared:/shared"]
  cache:
    image: test/web:1
    command: ["sh", "-c", "cat /shared/migrated > /tmp/seen; exec sleep 100000"]
    volumes: ["shared:/shared"]
    depends_on:
      web:
        condition: service_started
      migrate:
        condition: service_completed_successfully
    deploy:
      resources:
        limits: {memory: 64m, pids: 50, cpus: "0.5"}
    expose: ["6379"]
    labels:
      tier: cache
      price: $$5
    container_name: shop-cache
    secrets: [token]
    configs:
      - source: app
        target: /etc/app.conf
    ulimits:
      nofile: {soft: 4096, hard: 8192}
      core: 0
    sysctls:
      net.ipv4.ip_unprivileged_port_start: 80
    shm_size: 8m
    tty: true
    stdin_open: true
    logging:
      driver: json-file
      options: {max-size: 1m, max-file: "2"}
    extra_hosts: ["db.internal:10.1.2.3", "peer=192.0.2.7"]
    stop_grace_period: 1m30s
    init: true
    cap_drop: [NET_RAW]
volumes:
  shared:
secrets:
  token:
    file: ./token.txt
configs:
  app:
    file: ./app.conf
"#;

/// GET / on 127.0.0.1:`port` of wrend's namespace; the body, or "".
fn http_get(w: &Wrend, port: u16) -> String {
    w.on_netns(move || wren_tests::http_body(port))
}

fn list(w: &Wrend) -> Vec<Value> {
    serde_json::from_str(&w.ok(&["list", "--json"])).unwrap()
}

#[test]
fn three_services_applied_reapplied_changed_and_taken_down() {
    if !ready("three_services_applied_reapplied_changed_and_taken_down") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, COMPOSE).unwrap();
    std::fs::write(dir.path().join("common.env"), "FROM_FILE=yes\n").unwrap();
    std::fs::write(dir.path().join("token.txt"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("app.conf"), "level=debug\n").unwrap();
    // Interpolated from the .env beside the file (and a default).
    std::fs::write(
        dir.path().join(".env"),
        "# the worker's mode\nWORKER_MODE=one\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let out = w.wren(&["apply", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warned = text(&out.stderr);
    assert!(
        warned.contains("the variable WREN_TEST_UNSET_NOTE is not set")
            && !warned.contains("IN_A_COMMENT")
            && !warned.contains("WEB_PORT"),
        "{warned}"
    );
    let out = text(&out.stdout);
    for s in [
        "web: created",
        "worker: created",
        "cache: created",
        "migrate: created",
        "network shop_default: created",
    ] {
        assert!(out.contains(s), "{out}");
    }
    // worker was made only once web was healthy.
    let web = w.inspect("shop-web-1");
    let worker = w.inspect("shop-worker-1");
    assert_eq!(
        worker["restart_policy"], "always",
        "merged from x-keep-running"
    );
    let healthy_at = web["health"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["exit_code"] == 0)
        .map(|r| r["end"].as_str().unwrap().to_string())
        .unwrap();
    assert!(worker["created_at"].as_str().unwrap() >= healthy_at.as_str());
    // web's hostname is its own; its peers still find it by its service
    // name (the worker's fetches below), and by the hostname too.
    assert_eq!(
        w.ok(&["exec", "shop-web-1", "--", "hostname"]).trim(),
        "webhost"
    );
    let hosts = w.ok(&["exec", "shop-cache", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts
            .lines()
            .any(|l| l.ends_with("\tshop-web-1 webhost web")),
        "{hosts}"
    );
    // cache started after the job had finished (whether apply had to say
    // "cache: waiting for shop-migrate-1 to complete" depends on how long
    // making web took: not asserted).
    assert_eq!(
        w.ok(&["exec", "shop-cache", "--", "cat", "/tmp/seen"]),
        "migrated\n"
    );
    assert_eq!(w.inspect("shop-migrate-1")["exit_status"], 0);
    // The keys that map to `wren run` flags.
    let limits = w.ok(&[
        "exec", "shop-cache", "--", "sh", "-c",
        "echo $(ulimit -n):$(ulimit -Hn):$(ulimit -c) $(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); grep ' /dev/shm ' /proc/mounts",
    ]);
    assert!(
        limits.starts_with("4096:8192:0 80\n") && limits.contains("size=8192k"),
        "{limits}"
    );
    // tty and stdin_open: a terminal for `wren attach`, made detached.
    let cache = w.inspect("shop-cache");
    assert_eq!(
        (&cache["terminal"], &cache["stdin"]),
        (&json!(true), &json!(true))
    );
    // File secrets and configs, read-only where Compose puts them.
    let files = w.ok(&[
        "exec",
        "shop-cache",
        "--",
        "sh",
        "-c",
        "cat /run/secrets/token /etc/app.conf; echo x > /run/secrets/token || echo READ-ONLY",
    ]);
    assert_eq!(files, "s3cret\nlevel=debug\nREAD-ONLY\n");
    let cache = w.inspect("shop-cache");
    assert_eq!(cache["labels"]["tier"], "cache");
    assert_eq!(cache["labels"]["price"], "$5");
    let hosts = w.ok(&["exec", "shop-cache", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("10.1.2.3\tdb.internal") && hosts.contains("192.0.2.7\tpeer"),
        "{hosts}"
    );
    let rec: Value = serde_json::from_slice(
        &std::fs::read(w.root.path().join("lib/containers/shop-cache/record.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["stop_timeout"], 90, "{rec}");
    assert_eq!(
        (&rec["log_max_size"], &rec["log_max_files"]),
        (&json!(1 << 20), &json!(2)),
        "{rec}"
    );
    let spec: Value = serde_json::from_slice(
        &std::fs::read(
            w.root
                .path()
                .join("lib/containers/shop-cache/bundle/config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let res = &spec["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 64 << 20, "{res}");
    assert_eq!(res["pids"]["limit"], 50, "{res}");
    assert_eq!(res["cpu"]["quota"], 50_000, "{res}");
    let status = w.ok(&["exec", "shop-cache", "--", "cat", "/proc/self/status"]);
    let cap_bnd = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let bits = u64::from_str_radix(cap_bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bits & (1 << 13), 0, "CAP_NET_RAW kept: {cap_bnd}");
    let ps = w.ok(&["exec", "shop-cache", "--", "cat", "/proc/1/cmdline"]);
    assert!(!ps.starts_with("sleep"), "no init as pid 1: {ps:?}");
    assert!(wait_for(10, || http_get(&w, 18100).contains("compose web")));
    // The worker reaches web by its service name and writes the shared volume.
    let data = w.root.path().join("lib/volumes/shop_shared/_data");
    assert!(
        wait_for(10, || std::fs::read_to_string(data.join("fetched"))
            .is_ok_and(|t| t == "compose web\n")),
        "{}",
        w.ok(&["logs", "shop-worker-1"])
    );
    let env = std::fs::read_to_string(data.join("worker.env")).unwrap();
    assert!(
        env.contains("MODE=one\n")
            && env.contains("NOTE=and $literal\n")
            && env.contains("FROM_FILE=yes\n"),
        "{env}"
    );
    // The long-syntax tmpfs, with its size.
    let mounts = w.ok(&["exec", "shop-worker-1", "--", "cat", "/proc/mounts"]);
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("tmpfs /scratch tmpfs") && l.contains("size=1024k")),
        "{mounts}"
    );

    // Unchanged: nothing that runs is touched; the finished job runs
    // again, as `docker compose up` starts it again.
    let running = |w: &Wrend| -> Vec<Value> {
        list(w)
            .iter()
            .filter(|c| c["name"] != "shop-migrate-1")
            .map(|c| c["pid"].clone())
            .collect()
    };
    let pids = running(&w);
    let out = w.ok(&["apply", "-f", f]);
    assert_eq!(out.matches(": unchanged").count(), 3, "{out}");
    assert!(out.contains("migrate: recreated"), "{out}");
    assert_eq!(running(&w), pids);

    // Changed (a variable it uses): only the worker is made again.
    std::fs::write(dir.path().join(".env"), "WORKER_MODE=two\n").unwrap();
    let out = w.ok(&["apply", "-f", f]);
    assert!(out.contains("worker: recreated"), "{out}");
    assert!(
        out.contains("web: unchanged") && out.contains("cache: unchanged"),
        "{out}"
    );
    assert!(wait_for(10, || std::fs::read_to_string(
        data.join("worker.env")
    )
    .is_ok_and(|t| t.contains("MODE=two"))));

    // The same file, but its image name now means another image (a new
    // import of test/web:1). `wren auto-update` makes the labelled web
    // again (its compose labels kept, so apply sees it unchanged); apply
    // makes the other services on the image again, as Compose does after
    // a pull; then everything is unchanged.
    import_web_page(&w, b"compose web v2\n");
    let out = w.ok(&["auto-update", "--timeout", "20"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("shop-web-1 ") && l.contains("local") && l.contains("true")),
        "{out}"
    );
    assert!(
        wait_for(10, || http_get(&w, 18100) == "compose web v2\n"),
        "{}",
        http_get(&w, 18100)
    );
    let out = w.ok(&["apply", "-f", f]);
    assert!(
        out.contains("web: unchanged")
            && out.contains("worker: recreated (new image)")
            && out.contains("cache: recreated (new image)"),
        "{out}"
    );
    let out = w.ok(&["apply", "-f", f]);
    assert_eq!(out.matches(": unchanged").count(), 3, "{out}");

    // A profile's service is made once the profile is active, and left
    // alone (not removed) by an apply without it.
    assert!(!w.ok(&["list"]).contains("shop-toolbox-1"));
    let out = w.ok(&["apply", "-f", f, "--profile", "tools"]);
    assert!(
        out.contains("toolbox: created") && out.contains("web: unchanged"),
        "{out}"
    );
    w.wait_status("shop-toolbox-1", "running", 10);
    let out = w.ok(&["apply", "-f", f]);
    assert!(!out.contains("toolbox"), "{out}");
    assert_eq!(w.status("shop-toolbox-1"), "running");

    // Down: containers and the project network go; the volume stays.
    let out = w.ok(&["down", "-f", f]);
    assert!(out.contains("network shop_default: removed"), "{out}");
    assert!(list(&w).is_empty());
    for c in [
        "shop-web-1",
        "shop-worker-1",
        "shop-cache",
        "shop-migrate-1",
        "shop-toolbox-1",
    ] {
        w.assert_clean(c);
    }
    assert!(!w.root.path().join("lib/networks/shop_default").exists());
    assert!(data.is_dir());
    assert_eq!(http_get(&w, 18100), "");
}

#[test]
fn files_outside_the_subset_are_refused_and_leave_nothing() {
    if !ready("files_outside_the_subset_are_refused_and_leave_nothing") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    let f = file.to_str().unwrap();
    for (yaml, want) in [
        (
            "services:\n  web:\n    image: test/web:1\n    build: .\n",
            "build",
        ),
        ("services:\n  web:\n    image: test/web:1\ninclude: [more.yaml]\n", "include"),
        (
            "services:\n  a:\n    image: test/web:1\n    depends_on: [b]\n  b:\n    image: test/web:1\n    depends_on: [a]\n",
            "depends_on cycle",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    depends_on: [nope]\n",
            "no service \"nope\"",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    volumes: [\"undeclared:/x\"]\n",
            "volume \"undeclared\" is not declared",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    depends_on:\n      b: {condition: service_healthy}\n  b:\n    image: test/web:1\n",
            "needs a healthcheck on b",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    ports: [\"99999:80\"]\n",
            "99999",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    ports:\n      - {target: 80, app_protocol: http}\n",
            "unknown field `app_protocol`",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    environment:\n      KEY: ${NO_SUCH_KEY:?give NO_SUCH_KEY}\n",
            "give NO_SUCH_KEY",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    container_name: same\n  b:\n    image: test/web:1\n    container_name: same\n",
            "has the same container name",
        ),
        (
            // A container_name that is another service's default name.
            "services:\n  a:\n    image: test/web:1\n    container_name: bad-b-1\n  b:\n    image: test/web:1\n",
            "has the same container name",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    depends_on:\n      b: {required: false}\n  b:\n    image: test/web:1\n",
            "depends_on.b.required: only true",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    depends_on:\n      b: {condition: service_completed_successfully}\n  b:\n    image: test/web:1\n    restart: always\n",
            "restart: always never lets it",
        ),
        (
            // A job that fails: its status and output, and nothing left.
            "services:\n  a:\n    image: test/web:1\n    depends_on:\n      b: {condition: service_completed_successfully}\n  b:\n    image: test/web:1\n    command: sh -c 'echo the schema is broken; exit 3'\n",
            "exited with status 3; its last output:\nthe schema is broken",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    logging: {driver: syslog}\n",
            "services.a.logging.driver: \"syslog\" is outside the subset",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    logging:\n      options: {compress: \"true\"}\n",
            "services.a.logging.options.compress: outside the subset",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    env_file:\n      - path: ./absent.env\n",
            "services.a.env_file:",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    secrets: [nope]\n",
            "services.a.secrets: \"nope\" is not declared under the top-level secrets",
        ),
        (
            "services:\n  a:\n    image: test/web:1\nsecrets:\n  s: {external: true}\n",
            "unknown field `external`",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    configs: [c]\nconfigs:\n  c: {file: ./missing.conf}\n",
            "configs.c.file:",
        ),
        (
            "services:\n  a:\n    image: no/such:image\n    pull_policy: never\n",
            "services.a.image: no such image: no/such:image",
        ),
        (
            "services:\n  a:\n    image: test/web:1\n    pull_policy: build\n",
            "services.a.pull_policy: \"build\" is outside the subset",
        ),
    ] {
        std::fs::write(&file, yaml).unwrap();
        let e = w.fails(&["apply", "-f", f, "-p", "bad"]);
        assert!(e.contains(want), "{yaml}: {e}");
        assert!(list(&w).is_empty(), "{yaml}: something was made");
    }
    let nets = w.ok(&["network", "ls"]);
    assert!(!nets.contains("bad_default"), "{nets}");
}

#[test]
fn a_fixed_address_a_subnet_dns_and_bind_options_from_the_file() {
    if !ready("a_fixed_address_a_subnet_dns_and_bind_options_from_the_file") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "name: fixed\n\
         services:\n  \
           db:\n    image: test/web:1\n    command: [sleep, \"1000\"]\n    \
             networks:\n      back: {ipv4_address: 10.97.3.30}\n    \
             dns_search: [lan.example]\n    dns_opt: [ndots:2]\n    pid: host\n    \
             volumes:\n      - ./data:/data:rw,z\n      \
             - {type: bind, source: ./made, target: /made, bind: {create_host_path: true}}\n\
         networks:\n  back:\n    ipam:\n      config:\n        - subnet: 10.97.3.0/24\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = w.inspect("fixed-db-1");
    assert_eq!(db["ip_address"], "10.97.3.30", "{db}");
    let net: Value = serde_json::from_str(&w.ok(&["network", "inspect", "fixed_back"])).unwrap();
    assert!(net.to_string().contains("10.97.3.0/24"), "{net}");
    // The missing bind sources were made, and are the container's.
    assert!(dir.path().join("data").is_dir() && dir.path().join("made").is_dir());
    w.ok(&["exec", "fixed-db-1", "touch", "/data/x", "/made/y"]);
    assert!(dir.path().join("data/x").exists() && dir.path().join("made/y").exists());
    let resolv = w.ok(&["exec", "fixed-db-1", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.ends_with("search lan.example\noptions ndots:2\n"),
        "{resolv}"
    );
    let pidns = w.ok(&["exec", "fixed-db-1", "readlink", "/proc/self/ns/pid"]);
    assert_eq!(
        Path::new(pidns.trim()),
        std::fs::read_link("/proc/self/ns/pid").unwrap()
    );
    // Unchanged on a second apply; the subnet of an existing network is
    // not silently another.
    let out = w.ok(&["apply", "-f", f]);
    assert!(out.contains("db: unchanged"), "{out}");
    let changed = std::fs::read_to_string(&file)
        .unwrap()
        .replace("10.97.3.0/24", "10.97.4.0/24");
    std::fs::write(&file, changed).unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "network fixed_back exists with subnet: 10.97.3.0/24, the file asks for 10.97.4.0/24"
        ),
        "{}",
        text(&out.stderr)
    );
    w.ok(&["down", "-f", f]);
    assert!(list(&w).is_empty());
}

/// `network_mode: service:NAME` (a VPN sidecar's pattern) and `pid:
/// service:NAME`: the joined service is made first whatever the file's
/// order, the joiner serves on its published port, and a change to the
/// joined service makes its joiners again with it.
#[test]
fn services_that_join_another_services_namespaces() {
    if !ready("services_that_join_another_services_namespaces") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    let yaml = |vpn_cmd: &str| {
        format!(
            "name: side\n\
             services:\n  \
               app:\n    image: test/web:1\n    command: [httpd, -f, -p, \"80\", -h, /www]\n    \
                 network_mode: \"service:vpn\"\n  \
               debug:\n    image: test/web:1\n    command: [sleep, \"1001\"]\n    \
                 network_mode: none\n    pid: \"service:vpn\"\n    uts: \"service:vpn\"\n  \
               vpn:\n    image: test/web:1\n    command: [{vpn_cmd}]\n    \
                 ports: [\"127.0.0.1:18280:80\"]\n"
        )
    };
    std::fs::write(&file, yaml("sleep, \"1000\"")).unwrap();
    let f = file.to_str().unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let served = || wait_for(10, || http_get(&w, 18280).contains("compose web"));
    assert!(served(), "{}", w.log());
    assert_eq!(w.inspect("side-app-1")["network"], "container:side-vpn-1");
    let ps = w.ok(&["exec", "side-debug-1", "ps"]);
    assert!(ps.contains("sleep 1000"), "{ps}");
    // In vpn's UTS namespace: vpn's hostname, not its own service name.
    assert_eq!(w.ok(&["exec", "side-debug-1", "hostname"]), "vpn\n");
    assert_eq!(
        w.inspect("side-debug-1")["uts_mode"],
        "container:side-vpn-1"
    );
    let out = w.ok(&["apply", "-f", f]);
    for s in ["app", "debug", "vpn"] {
        assert!(out.contains(&format!("{s}: unchanged")), "{out}");
    }

    // The joined service changed: its joiners are made again with it.
    std::fs::write(&file, yaml("sleep, \"1002\"")).unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    assert!(out.contains("vpn: recreated"), "{out}");
    for s in ["app", "debug"] {
        assert!(
            out.contains(&format!("{s}: recreated (it joins a recreated service)")),
            "{out}"
        );
    }
    assert!(served(), "{}", w.log());
    let ps = w.ok(&["exec", "side-debug-1", "ps"]);
    assert!(ps.contains("sleep 1002"), "{ps}");

    // A service that is not in the file.
    std::fs::write(
        &file,
        yaml("sleep, \"1002\"").replace("service:vpn", "service:gone"),
    )
    .unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no service \"gone\""),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&file, yaml("sleep, \"1002\"")).unwrap();
    w.ok(&["down", "-f", f]);
    assert!(list(&w).is_empty());
}

/// The front/back split most multi-service files use: a proxy on both
/// networks publishes a port and reaches an app that only the back
/// network has; a client on the front network sees the proxy and not the
/// app. The back network has its own ipam (gateway, ip_range), driver
/// options (bridge name, MTU) and labels; described otherwise, it is
/// refused. Re-applied unchanged, nothing is made again; `down` removes
/// the back network and keeps the external front one.
#[test]
fn a_service_on_a_front_and_a_back_network() {
    if !ready("a_service_on_a_front_and_a_back_network") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "name: split\n\
         services:\n  \
           app:\n    image: test/web:1\n    command: [httpd, -f, -p, \"80\", -h, /www]\n    \
             networks: [back]\n  \
           proxy:\n    image: test/web:1\n    \
             command: [sh, -c, \"mkdir -p /p && wget -qO /p/index.html http://app/ && httpd -f -p 80 -h /p\"]\n    \
             depends_on: [app]\n    ports: [\"127.0.0.1:18380:80\"]\n    \
             networks:\n      front: {gw_priority: 1}\n      back: {aliases: [gateway]}\n  \
           client:\n    image: test/web:1\n    command: [sleep, \"1000\"]\n    networks: [front]\n    \
             links: [\"proxy:edge-proxy\"]\n\
         networks:\n  front: {external: true, name: edge}\n  \
           back:\n    name: split-backend\n    internal: true\n    attachable: true\n    \
             driver_opts: {com.docker.network.bridge.name: br-split, com.docker.network.driver.mtu: 1400}\n    \
             labels: {tier: back}\n    \
             ipam: {config: [{subnet: 10.77.50.0/24, gateway: 10.77.50.254, ip_range: 10.77.50.64/28}]}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // The external network must be made first; nothing is made without it.
    let out = w.wren(&["apply", "-f", f]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("networks.front: external network edge")
            && text(&out.stderr).contains("wren network create edge"),
        "{}",
        text(&out.stderr)
    );
    assert!(list(&w).is_empty());
    assert!(!w.ok(&["network", "ls"]).contains("split-backend"));
    w.ok(&["network", "create", "edge"]);
    let out = w.wren(&["apply", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The proxy fetched the app's page over the back network, and serves
    // it on its published port (the front network's).
    assert!(
        wren_tests::wait_for(10, || http_get(&w, 18380).contains("compose web")),
        "{}",
        w.log()
    );
    let proxy = w.inspect("split-proxy-1");
    // By the names the file gives them, not the project's; the back one
    // internal: the app there has no way out.
    assert_eq!(proxy["network"], "edge", "{proxy}");
    assert_eq!(proxy["networks"][1]["name"], "split-backend", "{proxy}");
    let back: Value =
        serde_json::from_str(&w.ok(&["network", "inspect", "split-backend"])).unwrap();
    assert_eq!(back[0]["internal"], true, "{back}");
    let routes = w.ok(&["exec", "split-app-1", "--", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let back_ip = proxy["networks"][1]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    // Its ipam, driver options and labels: addresses from the range, the
    // bridge's name and MTU.
    assert_eq!(back[0]["bridge"], "br-split", "{back}");
    assert_eq!(back[0]["gateway"], "10.77.50.254", "{back}");
    assert_eq!(back[0]["labels"]["tier"], "back", "{back}");
    let host: u8 = back_ip
        .strip_prefix("10.77.50.")
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("{back_ip}"));
    assert!((64..=79).contains(&host), "{back_ip}");
    let mtu = w.ok(&[
        "exec",
        "split-app-1",
        "--",
        "cat",
        "/sys/class/net/eth0/mtu",
    ]);
    assert_eq!(mtu.trim(), "1400");
    let app_hosts = w.ok(&["exec", "split-app-1", "--", "cat", "/etc/hosts"]);
    assert!(
        app_hosts.contains(&format!(
            "{back_ip}\tsplit-proxy-1 proxy gateway edge-proxy\n"
        )),
        "{app_hosts}"
    );
    let client_hosts = w.ok(&["exec", "split-client-1", "--", "cat", "/etc/hosts"]);
    assert!(client_hosts.contains("split-proxy-1"), "{client_hosts}");
    assert!(!client_hosts.contains("split-app-1"), "{client_hosts}");
    let got = w.ok(&[
        "exec",
        "split-client-1",
        "--",
        "wget",
        "-qO-",
        "http://proxy/",
    ]);
    assert_eq!(got, "compose web\n");
    // And by the name its link gives the proxy.
    let got = w.ok(&[
        "exec",
        "split-client-1",
        "--",
        "wget",
        "-qO-",
        "http://edge-proxy/",
    ]);
    assert_eq!(got, "compose web\n");
    // A network the file now describes otherwise is not changed under
    // its members: refused, by the key that differs.
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, yaml.replace("mtu: 1400", "mtu: 1500")).unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("network split-backend exists with driver_opts:"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&file, yaml).unwrap();
    let out = w.ok(&["apply", "-f", f]);
    for s in ["app: unchanged", "proxy: unchanged", "client: unchanged"] {
        assert!(out.contains(s), "{out}");
    }
    // down removes the project's network, and keeps the external one.
    let out = w.ok(&["down", "-f", f]);
    assert!(out.contains("network split-backend: removed"), "{out}");
    assert!(list(&w).is_empty());
    let nets = w.ok(&["network", "ls"]);
    assert!(
        !nets.contains("split-backend") && nets.contains("edge"),
        "{nets}"
    );
    w.ok(&["network", "rm", "edge"]);
}

/// `platform:` is checked against the image in the store: one for
/// another platform is refused under `pull_policy: never` before anything
/// is made (with the default policy it would be pulled again for the
/// platform asked); the host's platform runs.
#[test]
fn a_services_platform_is_checked_against_its_image() {
    if !ready("a_services_platform_is_checked_against_its_image") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let (host, other) = match std::env::consts::ARCH {
        "aarch64" => ("linux/arm64", "linux/amd64"),
        _ => ("linux/amd64", "linux/arm64"),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    let yaml = |platform: &str| {
        format!(
            "name: plat\nservices:\n  web:\n    image: test/web:1\n    platform: {platform}\n    \
             pull_policy: never\n    command: [sleep, \"1000\"]\n    network_mode: none\n"
        )
    };
    std::fs::write(&file, yaml(other)).unwrap();
    let f = file.to_str().unwrap();
    let out = w.wren(&["apply", "-f", f]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!(
            "image test/web:1 is for {host}, not {other} (and the pull policy is never)"
        )),
        "{e}"
    );
    assert!(list(&w).is_empty());
    std::fs::write(&file, yaml(host)).unwrap();
    w.ok(&["apply", "-f", f]);
    w.wait_status("plat-web-1", "running", 10);
    w.ok(&["down", "-f", f]);
    assert!(list(&w).is_empty());
}

/// A network the file renames: apply makes the new one, moves the service
/// onto it (its hash covers the network's name) and removes the old one,
/// bridge and all, once nothing uses it; it finds it by the project label
/// it put on it. `down` finds a network made under a name the file no
/// longer gives the same way. The labels are not the file's: they do not
/// count as a difference.
#[test]
fn a_renamed_network_is_removed_once_unused() {
    if !ready("a_renamed_network_is_removed_once_unused") {
        return;
    }
    let w = Wrend::start_in_netns(&[], &[]);
    import_web(&w);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    let yaml = |net: &str| {
        format!(
            "name: ren\nservices:\n  app:\n    image: test/web:1\n    command: [sleep, \"1000\"]\n    \
             networks: [back]\nnetworks:\n  back:\n    name: {net}\n    labels: {{tier: back}}\n"
        )
    };
    let bridge_of = |net: &str| -> String {
        let v: Value = serde_json::from_str(&w.ok(&["network", "inspect", net])).unwrap();
        v[0]["bridge"].as_str().unwrap().to_string()
    };
    let links = || text(&w.in_netns(&["ip", "-o", "link"]).stdout);
    let f = file.to_str().unwrap();
    std::fs::write(&file, yaml("ren-one")).unwrap();
    w.ok(&["apply", "-f", f]);
    let one: Value = serde_json::from_str(&w.ok(&["network", "inspect", "ren-one"])).unwrap();
    assert_eq!(one[0]["labels"]["wren.compose.project"], "ren", "{one}");
    assert_eq!(one[0]["labels"]["wren.compose.network"], "back", "{one}");
    assert_eq!(one[0]["labels"]["tier"], "back", "{one}");
    let bridge_one = bridge_of("ren-one");
    assert!(links().contains(&format!(": {bridge_one}:")), "{}", links());
    let out = w.ok(&["apply", "-f", f]);
    assert!(out.contains("app: unchanged"), "{out}");

    std::fs::write(&file, yaml("ren-two")).unwrap();
    let out = w.ok(&["apply", "-f", f]);
    assert!(out.contains("network ren-two: created"), "{out}");
    assert!(out.contains("app: recreated"), "{out}");
    assert!(
        out.contains("network ren-one: removed (no longer in the file)"),
        "{out}"
    );
    assert_eq!(w.inspect("ren-app-1")["network"], "ren-two");
    let nets = w.ok(&["network", "ls"]);
    assert!(
        !nets.contains("ren-one") && nets.contains("ren-two"),
        "{nets}"
    );
    assert!(
        !links().contains(&format!(": {bridge_one}:")),
        "{}",
        links()
    );
    // A network of the user's own that the file does not name is left.
    w.ok(&["network", "create", "ren-mine"]);
    // down with a file that renames it again, not yet applied: ren-two is
    // still found by its label, and goes with its bridge.
    let bridge_two = bridge_of("ren-two");
    std::fs::write(&file, yaml("ren-three")).unwrap();
    let out = w.ok(&["down", "-f", f]);
    assert!(out.contains("network ren-two: removed"), "{out}");
    assert!(list(&w).is_empty());
    let nets = w.ok(&["network", "ls"]);
    assert!(
        !nets.contains("ren-two") && !nets.contains("ren-three") && nets.contains("ren-mine"),
        "{nets}"
    );
    assert!(
        !links().contains(&format!(": {bridge_two}:")),
        "{}",
        links()
    );
    // An apply that fails after making its network (the port is taken)
    // removes the network and its bridge again.
    w.ok(&[
        "run",
        "-d",
        "--network",
        "ren-mine",
        "-p",
        "127.0.0.1:18391:80",
        "--name",
        "ren-holder",
        "test/web:1",
        "sleep",
        "1000",
    ]);
    std::fs::write(
        &file,
        "name: ren\nservices:\n  app:\n    image: test/web:1\n    command: [sleep, \"1000\"]\n    \
         ports: [\"127.0.0.1:18391:80\"]\n",
    )
    .unwrap();
    let before = links();
    let out = w.wren(&["apply", "-f", f]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("network ren_default: created")
            && text(&out.stderr).contains("18391"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(list(&w).len(), 1, "{:?}", list(&w));
    let nets = w.ok(&["network", "ls"]);
    assert!(!nets.contains("ren_default"), "{nets}");
    assert_eq!(links(), before);
    w.ok(&["rm", "-f", "ren-holder"]);
    w.ok(&["network", "rm", "ren-mine"]);
}
