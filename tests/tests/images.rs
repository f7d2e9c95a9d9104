//! Images end to end: OCI layouts built by the tests (busybox-static base,
//! several layers, a whiteout, an opaque dir, a hard link, a setuid file),
//! imported with `wren import`, run by a private wrend on an overlay of the
//! shared layer snapshots; bad input refused with nothing left in the store.
//!
//! Needs root and busybox-static; without root each test says so and skips.

use std::path::Path;

use serde_json::{json, Value};
use wren_tests::registry::{Compression, Layer, Layout};
use wren_tests::wrend::{name, Wrend};
use wren_tests::{require_root, skip, wait_for, Skip};

/// The base layer (busybox + /etc), gzip; shared by every test image.
fn base() -> Vec<u8> {
    Layer::busybox_base().finish()
}

/// `test/app:1`: the base, a layer with files, a hard link and a setuid
/// file, and a zstd layer that whites one file out and makes a dir opaque.
fn app_image(layout: &mut Layout, base: &[u8]) -> (String, Vec<String>) {
    let files = Layer::new()
        .dir("data", 0o755)
        .file_owned("data/keep", 0o644, 1000, b"kept\n")
        .file("data/gone", 0o644, b"should be whited out\n")
        .hardlink("data/keep-link", "data/keep")
        .dir("opq", 0o755)
        .file("opq/old", 0o644, b"old\n")
        .file("bin/suid", 0o4755, b"#!/bin/sh\n")
        .dir("home", 0o755)
        .dir("home/app", 0o755)
        .finish();
    let changes = Layer::new()
        .whiteout("data/gone")
        .opaque("opq")
        .file("opq/new", 0o644, b"new\n")
        .finish();
    layout.image(
        "test/app:1",
        &[
            (base, Compression::Gzip),
            (&files, Compression::None),
            (&changes, Compression::Zstd),
        ],
        json!({
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo default-cmd"],
            "Env": ["PATH=/bin", "GREETING=hello"],
            "WorkingDir": "/data",
            "User": "app",
            "StopSignal": "SIGUSR1",
        }),
    )
}

/// Every layer snapshot in the store under `w`.
fn layers(w: &Wrend) -> Vec<String> {
    let dir = w.root.path().join("lib/images/layers");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn tmp_empty(w: &Wrend) -> bool {
    std::fs::read_dir(w.root.path().join("lib/images/tmp")).map_or(true, |mut d| d.next().is_none())
}

fn images_json(w: &Wrend) -> Vec<Value> {
    let out = w.ok(&["images", "--json"]);
    serde_json::from_str::<Value>(&out)
        .expect("images json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn import_run_image_applies_config_and_layers() {
    if !require_root("import_run_image_applies_config_and_layers") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    let (id, blobs) = app_image(&mut layout, &base);
    let out = w.ok(&["import", layout.path().to_str().unwrap()]);
    assert!(out.contains("docker.io/test/app:1"), "{out}");
    assert!(out.contains("3 new layers"), "{out}");
    let imgs = images_json(&w);
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["id"], id.as_str());
    assert_eq!(layers(&w).len(), 3);

    // A second image on the same base, imported from a tar: the base is
    // not unpacked again.
    let mut l2 = Layout::new();
    let extra = Layer::new().file("extra", 0o644, b"x\n").finish();
    l2.image(
        "test/other:2",
        &[(&base, Compression::Gzip), (&extra, Compression::Gzip)],
        json!({"Cmd": ["cat", "/extra"]}),
    );
    let tar = l2.path().join("../other.tar");
    let tar = tar.as_path();
    l2.tar(tar);
    let out = w.ok(&["import", tar.to_str().unwrap()]);
    let _ = std::fs::remove_file(tar);
    assert!(out.contains("1 new layers, 1 already present"), "{out}");
    assert_eq!(layers(&w).len(), 4);
    assert!(tmp_empty(&w));

    // The default command, as the image's user, in its WorkingDir, with
    // its Env; whiteout, opaque dir, hard link and setuid bit as built.
    let c = name("img");
    let script = "id -u; id -g; id -G; pwd; echo $GREETING; ls /data; ls /opq; \
                  stat -c '%a %u %h' /bin/suid /data/keep";
    let out = w.wren(&["run", "--rm", "--name", &c, "test/app:1", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        w.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "1000",
            "1000",
            "1000 10",
            "/data",
            "hello",
            "keep",
            "keep-link",
            "new",
            "4755 0 1",
            "644 1000 2",
        ],
        "{stdout}"
    );
    w.assert_clean(&c);

    // Cmd replaced, Entrypoint kept; -e, -w, -u override; --entrypoint.
    let out = w.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=bye",
        "-w",
        "/opq",
        "-u",
        "0:0",
        "test/app:1",
        "echo $GREETING; pwd; id -u",
    ]);
    assert_eq!(out, "bye\n/opq\n0\n");
    // --group-add: a name from the image's /etc/group and a bare GID.
    let out = w.ok(&[
        "run",
        "--rm",
        "-u",
        "0:0",
        "--group-add",
        "wheel",
        "--group-add",
        "4242",
        "test/app:1",
        "id -G",
    ]);
    assert_eq!(out, "0 10 4242\n");
    let e = w.fails(&[
        "run",
        "--rm",
        "--group-add",
        "dialout",
        "test/app:1",
        "true",
    ]);
    assert!(e.contains("dialout"), "{e}");
    let out = w.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/echo",
        "test/app:1",
        "a",
        "b",
    ]);
    assert_eq!(out, "a b\n");
    let out = w.ok(&["run", "--rm", "test/app:1"]);
    assert_eq!(out, "default-cmd\n");
    let out = w.ok(&["run", "--rm", "test/other:2"]);
    assert_eq!(out, "x\n");

    // Volumes, tmpfs, read-only root, hostname.
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "from-host\n").unwrap();
    let v = format!("{}:/mnt:ro", vol.path().display());
    let m = format!(
        "type=bind,source={},target=/mnt2,readonly",
        vol.path().display()
    );
    let out = w.ok(&[
        "run",
        "--rm",
        "--mount",
        &m,
        "--mount",
        "type=tmpfs,target=/t2",
        "test/app:1",
        "cat /mnt2/f; grep -c ' /t2 tmpfs' /proc/mounts",
    ]);
    assert_eq!(out, "from-host\n1\n");
    let out = w.ok(&[
        "run", "--rm", "-u", "root", "--read-only", "--tmpfs", "/scratch", "-v", &v,
        "--hostname", "box", "test/app:1",
        "cat /mnt/f; hostname; touch /scratch/ok && echo tmpfs-ok; touch /x 2>/dev/null || echo ro-root; touch /mnt/y 2>/dev/null || echo ro-vol",
    ]);
    assert_eq!(out, "from-host\nbox\ntmpfs-ok\nro-root\nro-vol\n");

    // A detached container: its overlay is mounted while it lives, its
    // writes go to its own upper dir, and rm takes both away.
    let d = name("det");
    w.ok(&[
        "run",
        "-d",
        "-u",
        "0",
        "--name",
        &d,
        "test/app:1",
        "echo written > /data/new; sleep 100",
    ]);
    w.wait_status(&d, "running", 10);
    let rec = w.root.path().join("lib/containers").join(&d);
    let upper = rec.join("overlay/upper");
    assert!(
        wren_tests::wait_for(5, || upper.join("data/new").exists()),
        "no write in the upper dir {}",
        upper.display()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = rec.join("bundle/rootfs").display().to_string();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&rootfs) && l.contains("overlay")),
        "no overlay on {rootfs}"
    );
    let info = w.inspect(&d);
    assert_eq!(info["image"], "docker.io/test/app:1");
    // The lower layers were not written to.
    for b in &blobs {
        let snap = w
            .root
            .path()
            .join("lib/images/layers")
            .join(b.trim_start_matches("sha256:"));
        assert!(!snap.join("data/new").exists());
    }
    w.ok(&["rm", "-f", &d]);
    assert!(!upper.exists(), "upper dir left");
    w.assert_clean(&d);

    // `image inspect` names the layers' snapshot dirs.
    let v: Value = serde_json::from_str(&w.ok(&["image", "inspect", "test/app:1"])).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["layers"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["config"]["config"]["User"], "app");
}

#[test]
fn rmi_refuses_an_image_in_use_and_prune_frees_layers() {
    if !require_root("rmi_refuses_an_image_in_use_and_prune_frees_layers") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    app_image(&mut layout, &base);
    let extra = Layer::new().file("extra", 0o644, b"x\n").finish();
    layout.image(
        "test/other:2",
        &[(&base, Compression::Gzip), (&extra, Compression::Gzip)],
        json!({"Cmd": ["cat", "/extra"]}),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
    assert_eq!(layers(&w).len(), 4);

    let c = name("user");
    w.ok(&["create", "--name", &c, "test/app:1"]);
    // system df: test/app:1 is in use, test/other:2 is not; only other's
    // own layer (and its manifest and config) could be freed.
    let df: Value = serde_json::from_str(&w.ok(&["system", "df", "--json"])).unwrap();
    let row = |k: &str| {
        df.as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == k)
            .unwrap()
            .clone()
    };
    let (im, ct) = (row("Images"), row("Containers"));
    assert_eq!(
        (&im["total"], &im["active"]),
        (&json!(2), &json!(1)),
        "{df}"
    );
    let (size, free) = (
        im["size"].as_u64().unwrap(),
        im["reclaimable"].as_u64().unwrap(),
    );
    assert!(free > 0 && free < size / 2, "{df}");
    assert_eq!(
        (&ct["total"], &ct["active"]),
        (&json!(1), &json!(0)),
        "{df}"
    );
    assert_eq!(ct["reclaimable"], ct["size"]);
    assert_eq!(row("Local Volumes")["total"], 0);
    assert!(w.ok(&["system", "df"]).starts_with("TYPE"));
    let err = w.fails(&["rmi", "test/app:1"]);
    assert!(err.contains(&c) && err.contains("in use"), "{err}");
    assert_eq!(images_json(&w).len(), 2);

    // tag: another name for the same image, which runs by it; removing
    // that name keeps the image.
    assert_eq!(
        w.ok(&["tag", "test/other:2", "edge/app:stable"]),
        "docker.io/edge/app:stable\n"
    );
    assert_eq!(
        w.ok(&["run", "--rm", "--pull", "never", "edge/app:stable"]),
        "x\n"
    );
    let e = w.fails(&["tag", "test/other:2", "Bad Name"]);
    assert!(e.contains("Bad Name"), "{e}");
    let e = w.fails(&["image", "tag", "nope", "a:b"]);
    assert!(e.contains("nope"), "{e}");
    let e = w.fails(&["tag", "test/other:2", "a@sha256:00"]);
    assert!(e.contains("digest cannot be a name"), "{e}");
    w.ok(&["rmi", "edge/app:stable"]);
    assert_eq!(images_json(&w).len(), 2);
    assert_eq!(layers(&w).len(), 4);

    // Removing the other image keeps the shared base layer.
    w.ok(&["rmi", "test/other:2"]);
    assert_eq!(layers(&w).len(), 3);
    w.ok(&["rm", &c]);
    w.ok(&["rmi", "docker.io/test/app:1"]);
    assert!(images_json(&w).is_empty());
    assert!(layers(&w).is_empty(), "{:?}", layers(&w));
    let err = w.fails(&["run", "--rm", "--pull", "never", "test/app:1"]);
    assert!(err.contains("no such image: test/app:1"), "{err}");
    w.ok(&["image", "prune"]);
}

/// Imports `layout` expecting failure; returns stderr. The store must hold
/// exactly what it held before.
/// `container prune` and `system prune` (`-a`, `--volumes`): stopped and
/// created containers go, a running one stays with its image and volume;
/// an unused network goes, the default stays; without `-f` and a terminal
/// nothing happens.
#[test]
fn prune_containers_networks_images_and_volumes() {
    if !require_root("prune_containers_networks_images_and_volumes") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    app_image(&mut layout, &base);
    small_image(&mut layout, &base, "test/other:1", "other");
    w.ok(&["import", layout.path().to_str().unwrap()]);
    let (live, made, done) = (name("live"), name("made"), name("done"));
    w.ok(&[
        "run",
        "-d",
        "--name",
        &live,
        "-v",
        "pr-live:/v",
        "test/app:1",
        "sleep 100",
    ]);
    w.ok(&["create", "--name", &made, "test/other:1"]);
    w.ok(&[
        "run",
        "--name",
        &done,
        "-v",
        "pr-done:/d",
        "test/app:1",
        "true",
    ]);
    w.ok(&["network", "create", "pr-net"]);
    let names =
        |w: &Wrend| -> Vec<String> { w.ok(&["list", "-q"]).lines().map(String::from).collect() };
    assert_eq!(names(&w).len(), 3);

    let err = w.fails(&["container", "prune"]);
    assert!(err.contains("confirm with -f"), "{err}");
    let err = w.fails(&["system", "prune", "-a", "--volumes"]);
    assert!(err.contains("confirm with -f"), "{err}");
    assert_eq!(names(&w).len(), 3);

    let out = w.ok(&["container", "prune", "-f"]);
    assert!(
        out.contains(&format!("deleted container {made}"))
            && out.contains(&format!("deleted container {done}"))
            && !out.contains(&live)
            && out.contains("Total reclaimed space: "),
        "{out}"
    );
    assert_eq!(names(&w), std::slice::from_ref(&live));

    // No -a: images stay, the unused network goes, the default stays.
    let images = images_json(&w).len();
    let out = w.ok(&["system", "prune", "-f"]);
    assert!(out.contains("deleted network pr-net"), "{out}");
    assert_eq!(images_json(&w).len(), images);
    let nets = w.ok(&["network", "ls"]);
    assert!(
        !nets.contains("pr-net") && nets.contains("bridge"),
        "{nets}"
    );

    // -a: the image no container was made from goes, with its own layer;
    // the running container's image and the shared base stay.
    let before = layers(&w);
    let out = w.ok(&["system", "prune", "-a", "-f"]);
    assert!(out.contains("untagged docker.io/test/other:1"), "{out}");
    assert!(!out.contains("test/app:1"), "{out}");
    let after = layers(&w);
    assert_eq!(after.len(), before.len() - 1, "{out}");
    let left: Vec<String> = images_json(&w)
        .iter()
        .filter_map(|i| i["name"].as_str().map(String::from))
        .collect();
    assert_eq!(left, ["docker.io/test/app:1"]);
    let vols = w.ok(&["volume", "ls"]);
    assert!(
        vols.contains("pr-done") && vols.contains("pr-live"),
        "{vols}"
    );

    // --volumes: the volume of the removed container goes, data and all.
    let out = w.ok(&["system", "prune", "-a", "--volumes", "-f"]);
    assert!(out.contains("deleted volume pr-done"), "{out}");
    let vols = w.ok(&["volume", "ls"]);
    assert!(
        !vols.contains("pr-done") && vols.contains("pr-live"),
        "{vols}"
    );
    assert_eq!(w.ok(&["exec", &live, "echo", "still"]), "still\n");
    w.ok(&["rm", "-f", &live]);
    for c in [&live, &made, &done] {
        w.assert_clean(c);
    }
}

fn import_fails(w: &Wrend, layout: &Path, before: &[String]) -> String {
    let err = w.fails(&["import", layout.to_str().unwrap()]);
    assert_eq!(
        layers(w),
        before,
        "layers changed by a failed import: {err}"
    );
    assert!(tmp_empty(w), "tmp/ not empty after a failed import: {err}");
    err
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    if !require_root("bad_input_is_refused_and_leaves_nothing") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut good = Layout::new();
    good.image(
        "test/good:1",
        &[(&base, Compression::Gzip)],
        json!({"Cmd": ["true"]}),
    );
    w.ok(&["import", good.path().to_str().unwrap()]);
    let before = layers(&w);
    assert_eq!(before.len(), 1);

    // A layer entry with ../ in its path.
    let mut l = Layout::new();
    let evil = Layer::new().raw_file("../escaped", b"x").finish();
    let (_, blobs) = l.image(
        "test/evil:1",
        &[(&base, Compression::Gzip), (&evil, Compression::Gzip)],
        json!({}),
    );
    let err = import_fails(&w, l.path(), &before);
    assert!(
        err.contains("test/evil:1") && err.contains(&blobs[1]) && err.contains("escapes"),
        "{err}"
    );
    assert!(!w.root.path().join("lib/images/escaped").exists());

    // A symlink out of the layer, then a file through it.
    let mut l = Layout::new();
    let evil = Layer::new()
        .symlink("etcl", "/etc")
        .file("etcl/wren-escape", 0o644, b"x")
        .finish();
    let (_, blobs) = l.image("test/link:1", &[(&evil, Compression::Gzip)], json!({}));
    let err = import_fails(&w, l.path(), &before);
    assert!(err.contains(&blobs[0]) && err.contains("symlink"), "{err}");
    assert!(!Path::new("/etc/wren-escape").exists());

    // A corrupted blob: its bytes no longer hash to its digest.
    let mut l = Layout::new();
    let other = Layer::new().file("f", 0o644, &[7u8; 4096]).finish();
    let (_, blobs) = l.image("test/corrupt:1", &[(&other, Compression::None)], json!({}));
    let p = l.blob_path(&blobs[0]);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[600] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    let err = import_fails(&w, l.path(), &before);
    assert!(
        err.contains("test/corrupt:1")
            && err.contains(&blobs[0])
            && err.contains("digest mismatch"),
        "{err}"
    );

    // A truncated (gzip) layer.
    let mut l = Layout::new();
    let (_, blobs) = l.image("test/short:1", &[(&other, Compression::Gzip)], json!({}));
    let p = l.blob_path(&blobs[0]);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = import_fails(&w, l.path(), &before);
    assert!(
        err.contains("test/short:1") && err.contains(&blobs[0]),
        "{err}"
    );

    // Not an image at all, and an unknown image.
    let empty = tempfile::tempdir().unwrap();
    let err = import_fails(&w, empty.path(), &before);
    assert!(err.contains("neither an OCI image layout"), "{err}");
    let err = w.fails(&["run", "--rm", "--pull", "never", "test/absent:1"]);
    assert!(err.contains("no such image: test/absent:1"), "{err}");
    let err = w.fails(&["rmi", "nope"]);
    assert!(err.contains("no such image: nope"), "{err}");

    // The good image is intact and runs.
    assert_eq!(images_json(&w).len(), 1);
    w.ok(&["run", "--rm", "test/good:1"]);
}

/// Skips (visibly) when the registry or skopeo is not installed.
fn registry_tools(test: &str) -> bool {
    use wren_tests::{skip, Skip};
    if wren_tests::registry::registry_binary().is_none() {
        skip(
            test,
            Skip::Missing("docker-registry is not installed (make deps)".into()),
        );
        return false;
    }
    if !Path::new("/usr/bin/skopeo").exists() {
        skip(
            test,
            Skip::Missing("skopeo is not installed (make deps)".into()),
        );
        return false;
    }
    true
}

/// `base` plus one small layer, tagged `tag` in `layout`.
fn small_image(layout: &mut Layout, base: &[u8], tag: &str, file: &str) -> (String, Vec<String>) {
    let extra = Layer::new().file(file, 0o644, b"x\n").finish();
    layout.image(
        tag,
        &[(base, Compression::Gzip), (&extra, Compression::Zstd)],
        json!({"Cmd": ["cat", format!("/{file}")]}),
    )
}

/// The number after `key` in `wren pull`'s summary line.
fn figure(out: &str, key: &str) -> u64 {
    let at = out
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {out}"));
    out[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no figure before {key:?} in {out}"))
}

#[test]
fn pull_from_a_local_registry_shares_layers() {
    let test = "pull_from_a_local_registry_shares_layers";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    let (app_id, _) = app_image(&mut layout, &base);
    let mut l2 = Layout::new();
    small_image(&mut l2, &base, "v2", "second");
    // skopeo names a layout's image by its ref.name annotation.
    reg.push(&layout, "test/app:1", "team/app:1");
    reg.push(&l2, "v2", "team/second:v2");
    let insecure = ["--insecure-registry", reg.addr.as_str()];

    let app = format!("{}/team/app:1", reg.addr);
    let mut args = vec!["pull"];
    args.extend(insecure);
    args.push(&app);
    let out = w.ok(&args);
    assert!(out.contains(&format!("pulled {app}")), "{out}");
    assert_eq!(figure(&out, "new layers"), 3, "{out}");
    // skopeo may re-encode the manifest, so compare what runs, not ids.
    let _ = app_id;
    let out = w.ok(&["run", "--rm", &app, "echo $GREETING; ls /opq"]);
    assert_eq!(out, "hello\nnew\n");

    // run pulls an image the store lacks (--pull missing, the default),
    // with the same registry flags; --pull never refuses it; --pull
    // always fetches again (nothing new here).
    let second = format!("{}/team/second:v2", reg.addr);
    let err = w.fails(&["run", "--rm", "--pull", "never", &second]);
    assert!(err.contains(&format!("no such image: {second}")), "{err}");
    let mut args = vec!["run", "--rm"];
    args.extend(insecure);
    args.push(&second);
    let out = w.wren(&args);
    let err = wren_tests::text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        wren_tests::text(&out.stdout),
        "x\n",
        "the pull's lines go to stderr"
    );
    assert!(
        err.contains("not in the store, pulling") && err.contains(&format!("pulled {second}")),
        "{err}"
    );
    let mut args = vec!["run", "--rm", "--pull", "always"];
    args.extend(insecure);
    args.push(&second);
    let out = w.wren(&args);
    assert!(
        wren_tests::text(&out.stderr).contains("0 new layers"),
        "{}",
        wren_tests::text(&out.stderr)
    );
    w.ok(&["rmi", &second]);

    // The second image shares the base: only its own layer is fetched.
    let mut args = vec!["pull"];
    args.extend(insecure);
    args.push(&second);
    let out = w.ok(&args);
    assert_eq!(figure(&out, "new layers"), 1, "{out}");
    assert_eq!(figure(&out, "already present"), 1, "{out}");
    assert!(figure(&out, "bytes fetched") < 1000, "{out}");
    assert_eq!(w.ok(&["run", "--rm", &second]), "x\n");

    // By digest, quietly: prints the id only, fetches nothing new.
    let v: Value = serde_json::from_str(&w.ok(&["image", "inspect", &second])).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let by_digest = format!("{}/team/second@{id}", reg.addr);
    let mut args = vec!["pull", "-q"];
    args.extend(insecure);
    args.push(&by_digest);
    assert_eq!(w.ok(&args), format!("{id}\n"));

    // An unknown tag, a bad reference, a registry that is down: clear
    // errors naming the image; the store keeps what it had.
    let before = layers(&w);
    let absent = format!("{}/team/app:nope", reg.addr);
    let mut args = vec!["pull"];
    args.extend(insecure);
    args.push(&absent);
    let err = w.fails(&args);
    assert!(err.contains(&absent), "{err}");
    let err = w.fails(&["pull", "Bad Name"]);
    assert!(err.contains("invalid image reference"), "{err}");
    let down = closed_port();
    let gone = format!("{down}/team/app:1");
    let err = w.fails(&["pull", "--retry", "0", "--insecure-registry", &down, &gone]);
    assert!(err.contains(&gone), "{err}");
    assert_eq!(layers(&w), before);
    assert!(tmp_empty(&w));

    // A blob corrupted in the registry's storage: the digest check fails,
    // naming the image and the layer, and nothing of it is kept.
    let mut l3 = Layout::new();
    let (_, blobs) = small_image(&mut l3, &base, "v3", "third");
    reg.push(&l3, "v3", "team/third:v3");
    let hex = blobs[1].trim_start_matches("sha256:");
    let data = reg
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).expect("the registry's blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let third = format!("{}/team/third:v3", reg.addr);
    let err = w.fails(&["pull", "--insecure-registry", &reg.addr, &third]);
    assert!(err.contains(&third) && err.contains(&blobs[1]), "{err}");
    assert_eq!(layers(&w), before);
    assert!(tmp_empty(&w));

    // Two tags and the digest reference.
    assert_eq!(images_json(&w).len(), 3);
    assert_eq!(w.ok(&["run", "--rm", &by_digest]), "x\n");
}

/// A free 127.0.0.1 port that nothing listens on: a registry that is down.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// registries.conf, as Podman reads it: a name served by a mirror after
/// one that is down (the primary location down too), plain HTTP without
/// the flag, a blocked name, every source down, a file that is not TOML.
/// The image keeps the name asked for; a failed pull keeps nothing.
#[test]
fn registries_conf_mirrors_locations_and_blocks() {
    let test = "registries_conf_mirrors_locations_and_blocks";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    small_image(&mut layout, &base, "v1", "mirrored");
    reg.push(&layout, "v1", "cache/team/app:v1");
    let (down, down2) = (closed_port(), closed_port());
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"
unqualified-search-registries = ["docker.io"]
[aliases]
"app" = "registry.example.invalid/team/app"

# The name users write; served from the mirror, the "real" one is down.
[[registry]]
prefix = "registry.example.invalid/team"
location = "{down}/team"
insecure = true
[[registry.mirror]]
location = "{down2}/nothing"
insecure = true
[[registry.mirror]]
location = "{reg}/cache/team"
insecure = true

[[registry]]
prefix = "{reg}/blocked"
blocked = true

[[registry]]
location = "{reg}"
insecure = true

[[registry]]
prefix = "gone.example.invalid"
location = "{down}"
insecure = true
[[registry.mirror]]
location = "{down2}/m"
insecure = true
"#,
            reg = reg.addr
        ),
    )
    .unwrap();
    let with_conf = |conf: &Path, args: &[&str]| {
        wren_tests::run(w.cmd().env("CONTAINERS_REGISTRIES_CONF", conf).args(args))
    };
    let name = "registry.example.invalid/team/app:v1";
    let out = with_conf(&conf, &["pull", name]);
    let (stdout, stderr) = (wren_tests::text(&out.stdout), wren_tests::text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("pulled {name} (sha256:"))
            && stdout.contains(&format!("from mirror {}/cache/team/app:v1", reg.addr)),
        "{stdout}"
    );
    assert_eq!(figure(&stdout, "new layers"), 2, "{stdout}");
    // Named as asked, and runs by that name with no registry involved.
    let listed: Vec<String> = images_json(&w)
        .iter()
        .filter_map(|i| i["name"].as_str().map(String::from))
        .collect();
    assert!(listed.iter().any(|n| n == name), "{listed:?}");
    assert_eq!(w.ok(&["run", "--rm", "--pull", "never", name]), "x\n");
    // `run` pulls through the same file.
    w.ok(&["rmi", name]);
    let out = with_conf(&conf, &["run", "--rm", name]);
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    assert_eq!(wren_tests::text(&out.stdout), "x\n");
    assert!(wren_tests::text(&out.stderr).contains("from mirror"));

    // Plain HTTP to the registry through its `insecure` table; without
    // the file (and without --insecure-registry) the same pull fails.
    let direct = format!("{}/cache/team/app:v1", reg.addr);
    let out = with_conf(&conf, &["pull", &direct]);
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    assert!(!wren_tests::text(&out.stdout).contains(" from "));
    w.ok(&["rmi", &direct]);
    w.fails(&["pull", &direct]);

    // Blocked (before any connection), every source down, a bad file:
    // errors naming the file or each source; the store is as it was.
    let before = layers(&w);
    let blocked = format!("{}/blocked/app:v1", reg.addr);
    let out = with_conf(&conf, &["pull", &blocked]);
    let err = wren_tests::text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&blocked) && err.contains("blocked") && err.contains(&*conf.to_string_lossy()),
        "{err}"
    );
    let out = with_conf(&conf, &["pull", "--retry", "0", "gone.example.invalid/x:1"]);
    let err = wren_tests::text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no source had it")
            && err.contains(&format!("mirror {down2}/m/x:1"))
            && err.contains(&format!("{down}/x:1")),
        "{err}"
    );
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "[[registry]\nprefix = \"x\"\n").unwrap();
    let out = with_conf(&bad, &["pull", &direct]);
    let err = wren_tests::text(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&*bad.to_string_lossy()) && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(layers(&w), before);
    assert!(tmp_empty(&w));
}

/// A registry wanting `wren` / `s3cret`, holding `team/private:v1`, and
/// a wrend.
fn private_registry() -> (wren_tests::registry::Registry, Wrend) {
    let reg = wren_tests::registry::Registry::start_with_auth("wren", "s3cret");
    let w = Wrend::start(&[]);
    let mut l = Layout::new();
    small_image(&mut l, &base(), "v1", "private");
    reg.push_as(&l, "v1", "team/private:v1", Some("wren:s3cret"));
    (reg, w)
}

#[test]
fn pull_with_basic_auth_and_login() {
    let test = "pull_with_basic_auth_and_login";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let (reg, w) = private_registry();
    let creds = tempfile::tempdir().unwrap();
    let authfile_path = creds.path().join("auth.json");
    let authfile = authfile_path.to_str().unwrap();
    let image = format!("{}/team/private:v1", reg.addr);
    let pull = [
        "pull",
        "--authfile",
        authfile,
        "--insecure-registry",
        &reg.addr,
        &image,
    ];

    let err = w.fails(&pull);
    assert!(err.contains(&image), "{err}");
    let login = |password: &str| {
        wren_tests::run_with_input(
            w.cmd().args([
                "login",
                "--authfile",
                authfile,
                "--insecure",
                "-u",
                "wren",
                "--password-stdin",
                &format!("http://{}/v2/", reg.addr),
            ]),
            format!("{password}\n").as_bytes(),
        )
    };
    // The registry is asked first: a wrong password is refused, by name,
    // and nothing is stored.
    let out = login("wrong");
    let err = wren_tests::text(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("login {}: unauthorized", reg.addr)),
        "{err}"
    );
    assert!(!authfile_path.exists());
    let err = w.fails(&pull);
    assert!(err.contains(&image), "{err}");
    assert!(images_json(&w).is_empty());
    let out = login("s3cret");
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    let saved: Value = serde_json::from_slice(&std::fs::read(&authfile_path).unwrap()).unwrap();
    assert!(saved["auths"][&reg.addr]["auth"].is_string(), "{saved}");
    let out = w.ok(&pull);
    assert!(out.contains(&format!("pulled {image}")), "{out}");
    assert_eq!(w.ok(&["run", "--rm", &image]), "x\n");
    w.ok(&["logout", "--authfile", authfile, &reg.addr]);
    let err = w.fails(&["logout", "--authfile", authfile, &reg.addr]);
    assert!(err.contains("no credentials stored"), "{err}");

    // On a terminal the user and password are asked for; without one,
    // the missing flag is named.
    let out = wren_tests::pty::run_in_pty(
        w.cmd()
            .args(["login", "--authfile", authfile, "--insecure", &reg.addr]),
        24,
        80,
        b"wren\ns3cret\n",
        std::time::Duration::from_millis(300),
        std::time::Duration::from_secs(30),
    );
    assert!(
        out.status.is_some_and(|s| s.success())
            && out.output.contains("Username: ")
            && out.output.contains("Password: ")
            && out.output.contains("login succeeded"),
        "{}",
        out.output
    );
    w.ok(&pull);
    let out = wren_tests::run_with_input(
        w.cmd()
            .args(["login", "--authfile", authfile, "--insecure", &reg.addr]),
        b"",
    );
    let err = wren_tests::text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("give the user with -u"),
        "{err}"
    );
}

/// `docker-credential-wrentest`: a credential helper speaking Docker's
/// protocol, keeping each server's JSON in a file of `dir`.
fn credential_helper(bin: &Path, dir: &Path) {
    let script = format!(
        r#"#!/bin/sh
d={dir}
key() {{ printf '%s' "$1" | tr -c 'A-Za-z0-9.' _; }}
case "$1" in
get) read -r url; f="$d/$(key "$url")"
     if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store) cat > "$d/in"; url=$(sed 's/.*"ServerURL":"\([^"]*\)".*/\1/' "$d/in"); mv "$d/in" "$d/$(key "$url")" ;;
erase) read -r url; f="$d/$(key "$url")"
     if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
"#,
        dir = dir.display()
    );
    let helper = bin.join("docker-credential-wrentest");
    std::fs::write(&helper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credentials_from_helpers_and_podman_files() {
    let test = "credentials_from_helpers_and_podman_files";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let (reg, w) = private_registry();
    let image = format!("{}/team/private:v1", reg.addr);
    let tmp = tempfile::tempdir().unwrap();
    let (bin, kept) = (tmp.path().join("bin"), tmp.path().join("kept"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&kept).unwrap();
    credential_helper(&bin, &kept);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let wren = |args: &[&str], input: Option<&str>| {
        let mut c = w.cmd();
        c.env("PATH", &path).args(args);
        match input {
            Some(i) => wren_tests::run_with_input(&mut c, i.as_bytes()),
            None => wren_tests::run(&mut c),
        }
    };
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
        wren_tests::text(&out.stdout)
    };

    for (n, config) in [
        json!({ "credHelpers": { &reg.addr: "wrentest" } }),
        json!({ "credsStore": "wrentest", "auths": { "other.example": { "auth": "eDp5" } } }),
    ]
    .into_iter()
    .enumerate()
    {
        let file = tmp.path().join(format!("config{n}.json"));
        std::fs::write(&file, config.to_string()).unwrap();
        let file = file.to_str().unwrap();
        let pull = [
            "pull",
            "--authfile",
            file,
            "--insecure-registry",
            &reg.addr,
            &image,
        ];
        // login stores with the helper; the file keeps an empty entry.
        let out = ok(wren(
            &[
                "login",
                "--authfile",
                file,
                "--insecure",
                "-u",
                "wren",
                "--password-stdin",
                &reg.addr,
            ],
            Some("s3cret\n"),
        ));
        assert!(out.contains("docker-credential-wrentest"), "{out}");
        let saved: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(saved["auths"][&reg.addr], json!({}), "{saved}");
        assert!(!saved.to_string().contains("s3cret"), "{saved}");
        let out = ok(wren(&pull, None));
        assert!(out.contains(&format!("pulled {image}")), "{out}");
        w.ok(&["rmi", &image]);
        // logout erases it with the helper: the pull is anonymous again.
        ok(wren(&["logout", "--authfile", file, &reg.addr], None));
        assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 0);
        let out = wren(&pull, None);
        assert!(!out.status.success());
        assert!(images_json(&w).is_empty());
    }

    // registries.conf's credential-helpers decide the order when set:
    // the helper alone finds them; the auth files alone (here none) do not.
    std::fs::write(
        kept.join(reg.addr.replace(':', "_")),
        json!({ "ServerURL": &reg.addr, "Username": "wren", "Secret": "s3cret" }).to_string(),
    )
    .unwrap();
    for (helpers, works) in [("\"wrentest\"", true), ("\"containers-auth.json\"", false)] {
        let conf = tmp.path().join("registries.conf");
        std::fs::write(&conf, format!("credential-helpers = [{helpers}]\n")).unwrap();
        let mut c = w.cmd();
        c.env("PATH", &path)
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .args(["pull", "--insecure-registry", &reg.addr, &image]);
        let out = wren_tests::run(&mut c);
        assert_eq!(
            out.status.success(),
            works,
            "{helpers}: {}",
            wren_tests::text(&out.stderr)
        );
        if works {
            w.ok(&["rmi", &image]);
        }
    }

    // A helper that is not installed is named, with the file naming it.
    let file = tmp.path().join("absent.json");
    std::fs::write(
        &file,
        json!({ "credHelpers": { &reg.addr: "wren-absent" } }).to_string(),
    )
    .unwrap();
    let out = wren(
        &[
            "pull",
            "--authfile",
            file.to_str().unwrap(),
            "--insecure-registry",
            &reg.addr,
            &image,
        ],
        None,
    );
    let err = wren_tests::text(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("docker-credential-wren-absent is not on PATH")
            && err.contains(file.to_str().unwrap()),
        "{err}"
    );

    // No file given: Docker's file, then Podman's auth.json, whose key
    // may name a namespace.
    let docker = tmp.path().join("docker");
    let run_dir = tmp.path().join("xdg-run");
    std::fs::create_dir_all(run_dir.join("containers")).unwrap();
    std::fs::write(
        run_dir.join("containers/auth.json"),
        json!({ "auths": {
            format!("{}/team", reg.addr): { "auth": "d3JlbjpzM2NyZXQ=" },
            &reg.addr: { "auth": "d3Jlbjp3cm9uZw==" },
        }})
        .to_string(),
    )
    .unwrap();
    let mut c = w.cmd();
    c.env_remove("REGISTRY_AUTH_FILE")
        .env("DOCKER_CONFIG", &docker)
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("XDG_CONFIG_HOME", tmp.path().join("xdg-config"))
        .args(["pull", "--insecure-registry", &reg.addr, &image]);
    let out = ok(wren_tests::run(&mut c));
    assert!(out.contains(&format!("pulled {image}")), "{out}");
    assert!(!docker.exists());
}

#[test]
fn concurrent_pulls_fetch_a_shared_layer_once() {
    let test = "concurrent_pulls_fetch_a_shared_layer_once";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    let mut la = Layout::new();
    small_image(&mut la, &base, "a", "a");
    let mut lb = Layout::new();
    small_image(&mut lb, &base, "b", "b");
    reg.push(&la, "a", "team/a:1");
    reg.push(&lb, "b", "team/b:1");
    let refs = [
        format!("{}/team/a:1", reg.addr),
        format!("{}/team/b:1", reg.addr),
    ];
    let outs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = refs
            .iter()
            .map(|r| {
                let w = &w;
                let addr = reg.addr.as_str();
                s.spawn(move || w.ok(&["pull", "--insecure-registry", addr, r]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Three distinct layers: the base was fetched and unpacked by one pull
    // only; the other found it present after waiting for its lock.
    let new: u64 = outs.iter().map(|o| figure(o, "new layers")).sum();
    let present: u64 = outs.iter().map(|o| figure(o, "already present")).sum();
    assert_eq!((new, present), (3, 1), "{outs:?}");
    assert_eq!(layers(&w).len(), 3);
    assert!(tmp_empty(&w));
    assert_eq!(w.ok(&["run", "--rm", &refs[0]]), "x\n");
    assert_eq!(w.ok(&["run", "--rm", &refs[1]]), "x\n");
}

#[test]
fn import_docker_save_and_a_multi_platform_index() {
    if !require_root("import_docker_save_and_a_multi_platform_index") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();

    // docker save: uncompressed layer.tar files and a config by path.
    let top = Layer::new()
        .file("saved", 0o644, b"from docker save\n")
        .finish();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["cat", "/saved"]},
        "rootfs": {"type": "layers", "diff_ids": [
            wren_tests::registry::sha256(&base), wren_tests::registry::sha256(&top)]},
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("saved.tar");
    Layout::new().docker_save(&[&base, &top], &config, &["saved:1", "saved:latest"], &tar);
    let out = w.ok(&["import", tar.to_str().unwrap()]);
    assert!(out.contains("docker.io/library/saved:1"), "{out}");
    assert_eq!(w.ok(&["run", "--rm", "saved"]), "from docker save\n");
    assert_eq!(images_json(&w).len(), 2);

    // A multi-platform index: the host's platform is picked, --platform
    // picks another, and a platform it lacks is a clear error.
    let mut l = Layout::new();
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let mine = Layer::new().file("arch", 0o644, b"host\n").finish();
    let theirs = Layer::new().file("arch", 0o644, b"other\n").finish();
    let cmd = json!({"Cmd": ["cat", "/arch"]});
    let (dm, _) = l.image(
        "x",
        &[(&base, Compression::Gzip), (&mine, Compression::Gzip)],
        cmd.clone(),
    );
    let (dt, _) = l.image(
        "y",
        &[(&base, Compression::Gzip), (&theirs, Compression::Gzip)],
        cmd,
    );
    l.platform_index("test/multi:1", &[(&dt, other), (&dm, host)]);
    w.ok(&["import", l.path().to_str().unwrap()]);
    assert_eq!(w.ok(&["run", "--rm", "test/multi:1"]), "host\n");
    let platform = format!("linux/{other}");
    w.ok(&[
        "import",
        "--platform",
        &platform,
        "--name",
        "test/multi:other",
        l.path().to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&w.ok(&["image", "inspect", "test/multi:other"])).unwrap();
    assert_eq!(v["id"], dt.as_str());
    let err = w.fails(&[
        "import",
        "--platform",
        "linux/s390x",
        l.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("test/multi:1") && err.contains("linux/s390x"),
        "{err}"
    );
}

#[test]
fn image_container_keeps_its_writes_across_restarts() {
    if !require_root("image_container_keeps_its_writes_across_restarts") {
        return;
    }
    let mut w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    app_image(&mut layout, &base);
    w.ok(&["import", layout.path().to_str().unwrap()]);

    // Each restart deletes the task (the shim unmounts the overlay) and
    // creates it again on the same upper dir.
    let c = name("again");
    w.ok(&[
        "run",
        "-d",
        "-u",
        "0",
        "--restart",
        "on-failure:2",
        "--name",
        &c,
        "test/app:1",
        "echo run >> /data/count; exit 1",
    ]);
    assert!(
        wren_tests::wait_for(20, || {
            let v = w.inspect(&c);
            v["status"] == "stopped" && v["restart_count"] == 2
        }),
        "{}",
        w.inspect(&c)
    );
    let upper = w
        .root
        .path()
        .join("lib/containers")
        .join(&c)
        .join("overlay/upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("data/count")).unwrap(),
        "run\nrun\nrun\n"
    );
    // `cp` from and into the stopped container: its layers and writes as
    // one tree (a whited-out file stays gone), through the overlay its
    // kept task still has mounted.
    let host = tempfile::tempdir().unwrap();
    let h = |p: &str| host.path().join(p).to_str().unwrap().to_string();
    w.ok(&["cp", &format!("{c}:/data"), &h("data")]);
    assert_eq!(
        std::fs::read_to_string(h("data") + "/count").unwrap(),
        "run\nrun\nrun\n"
    );
    assert_eq!(
        std::fs::read_to_string(h("data") + "/keep").unwrap(),
        "kept\n"
    );
    assert!(!Path::new(&(h("data") + "/gone")).exists());
    std::fs::write(h("fix"), "patched\n").unwrap();
    w.ok(&["cp", &h("fix"), &format!("{c}:/data/fix")]);
    assert_eq!(
        std::fs::read_to_string(upper.join("data/fix")).unwrap(),
        "patched\n"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("wren-cp-"), "{mounts}");
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("wren-cp-"));
    assert!(!left, "a wren-cp- directory was left in the temp dir");

    // The copy and a start take turns on the container's overlay (one
    // mount of its upper dir at a time): with the lock held, as a copy
    // holds it, `start` is refused before anything is touched (the kept
    // task and its mount stay, for the copy); a copy waits while the lock
    // is held, as wrend holds it for a start.
    let lock_path = w
        .root
        .path()
        .join("lib/containers")
        .join(&c)
        .join("overlay.lock");
    let held = nix::fcntl::Flock::lock(
        std::fs::File::options()
            .write(true)
            .open(&lock_path)
            .unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let rootfs = w
        .root
        .path()
        .join("lib/containers")
        .join(&c)
        .join("bundle/rootfs");
    let mounted = |p: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
    };
    assert!(mounted(&rootfs), "the kept task's overlay");
    let err = w.fails(&["start", &c]);
    assert!(err.contains("`wren cp` is copying its files"), "{err}");
    assert_eq!(w.inspect(&c)["status"], "stopped");
    assert!(
        mounted(&rootfs),
        "a refused start took the kept task's mount"
    );
    let mut copy = wren_tests::spawn_registered(
        w.cmd()
            .args(["cp", &h("fix"), &format!("{c}:/data/fix2")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(copy.try_wait().unwrap().is_none(), "cp did not wait");
    drop(held);
    let st = copy.wait().unwrap();
    wren_tests::unregister(copy.id());
    assert!(st.success());
    assert!(upper.join("data/fix2").exists());
    // With no task left (a "reboot": wrend and the shim killed; the shim's
    // delete unmounts the rootfs), copies mount the layers and upper dir
    // themselves, read-only out and read-write in: the same tree, the
    // whited-out file still gone.
    w.kill9();
    w.kill_shims(&c);
    w.restart();
    w.wait_status(&c, "stopped", 10);
    assert!(!mounted(&rootfs));
    w.ok(&["cp", &format!("{c}:/data"), &h("again")]);
    assert!(Path::new(&(h("again") + "/fix2")).exists());
    assert!(Path::new(&(h("again") + "/keep")).exists());
    assert!(!Path::new(&(h("again") + "/gone")).exists());
    w.ok(&["cp", &h("fix"), &format!("{c}:/data/fix3")]);
    assert!(upper.join("data/fix3").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("wren-cp-"), "{mounts}");
    w.ok(&["start", &c]);
    w.wait_status(&c, "stopped", 10);
    w.ok(&["rm", "-f", &c]);
    w.assert_clean(&c);

    // A SIGKILLed and restarted wrend finds the container and its overlay.
    let d = name("survivor");
    w.ok(&[
        "run",
        "-d",
        "-u",
        "0",
        "--name",
        &d,
        "test/app:1",
        "echo kept > /data/new; sleep 100",
    ]);
    w.wait_status(&d, "running", 10);
    w.restart();
    w.wait_status(&d, "running", 10);
    assert!(wren_tests::wait_for(5, || upper_has(&w, &d)));
    assert_eq!(w.ok(&["exec", &d, "cat", "/data/new"]), "kept\n");
    w.ok(&["rm", "-f", &d]);
    w.assert_clean(&d);
}

/// A restart that falls due while `wren cp` holds the container's overlay
/// waits for the copy, and is not counted as a restart meanwhile.
#[test]
fn a_restart_waits_for_a_copy() {
    if !require_root("a_restart_waits_for_a_copy") {
        return;
    }
    let w = Wrend::start(&[]);
    let mut layout = Layout::new();
    app_image(&mut layout, &base());
    w.ok(&["import", layout.path().to_str().unwrap()]);
    let c = name("waits");
    w.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &c,
        "test/app:1",
        "sleep 0.3; exit 3",
    ]);
    w.wait_status(&c, "running", 10);
    let lock_path = w
        .root
        .path()
        .join("lib/containers")
        .join(&c)
        .join("overlay.lock");
    let held = nix::fcntl::Flock::lock(
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    assert!(
        wait_for(10, || w.status(&c) == "restarting"),
        "{}",
        w.inspect(&c)
    );
    let count = w.inspect(&c)["restart_count"].clone();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let v = w.inspect(&c);
    assert_eq!(v["status"], "restarting", "{v}");
    assert_eq!(v["restart_count"], count, "{v}");
    assert_eq!(v["last_error"], "", "{v}");
    drop(held);
    assert!(
        wait_for(10, || w.inspect(&c)["restart_count"] != count),
        "{}",
        w.inspect(&c)
    );
    w.ok(&["rm", "-f", &c]);
    w.assert_clean(&c);
}

fn upper_has(w: &Wrend, name: &str) -> bool {
    w.root
        .path()
        .join("lib/containers")
        .join(name)
        .join("overlay/upper/data/new")
        .exists()
}

#[test]
fn pull_over_tls_with_a_registry_ca() {
    let test = "pull_over_tls_with_a_registry_ca";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start_tls();
    let w = Wrend::start(&[]);
    let base = base();
    let mut l = Layout::new();
    small_image(&mut l, &base, "v1", "secure");
    reg.push(&l, "v1", "team/secure:v1");
    let image = format!("{}/team/secure:v1", reg.addr);

    // The test CA is not the system's: refused, naming the image, and
    // not retried (it would fail the same way).
    let err = w.fails(&["pull", &image]);
    assert!(err.contains(&image) && !err.contains("retrying"), "{err}");
    assert!(images_json(&w).is_empty());
    let ca = reg.ca();
    let out = w.ok(&["pull", "--ca-cert", ca.to_str().unwrap(), &image]);
    assert!(out.contains(&format!("pulled {image}")), "{out}");
    assert_eq!(w.ok(&["run", "--rm", &image]), "x\n");

    // An insecure registry that speaks TLS is spoken to over TLS without
    // verification (as Docker's insecure-registries and Podman's
    // --tls-verify=false), from the flag or from registries.conf.
    w.ok(&["rmi", &image]);
    let out = w.ok(&["pull", "--insecure-registry", &reg.addr, &image]);
    assert!(out.contains(&format!("pulled {image}")), "{out}");
    w.ok(&["rmi", &image]);
    let conf = w.root.path().join("insecure.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nprefix = \"{}\"\ninsecure = true\n", reg.addr),
    )
    .unwrap();
    let out = wren_tests::run(
        w.cmd()
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .args(["pull", &image]),
    );
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    assert_eq!(w.ok(&["run", "--rm", &image]), "x\n");
}

#[test]
fn a_full_store_fails_cleanly() {
    if !require_root("a_full_store_fails_cleanly") {
        return;
    }
    let w = Wrend::start(&[]);
    // The store on a 6 MiB tmpfs: the busybox base (~2 MB) fits, a layer
    // of 8 MiB does not.
    let store = w.root.path().join("lib/images");
    std::fs::create_dir_all(&store).unwrap();
    let out = wren_tests::run(std::process::Command::new("mount").args([
        "-t",
        "tmpfs",
        "-o",
        "size=6m",
        "tmpfs",
        store.to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "mount tmpfs: {}",
        wren_tests::text(&out.stderr)
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(store.clone());

    let base = base();
    let mut good = Layout::new();
    good.image(
        "test/good:1",
        &[(&base, Compression::Gzip)],
        json!({"Cmd": ["true"]}),
    );
    w.ok(&["import", good.path().to_str().unwrap()]);
    let before = layers(&w);

    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let fat = Layer::new().file("fat", 0o644, &big).finish();
    let mut l = Layout::new();
    let (_, blobs) = l.image(
        "test/fat:1",
        &[(&base, Compression::Gzip), (&fat, Compression::Gzip)],
        json!({}),
    );
    let err = import_fails(&w, l.path(), &before);
    assert!(
        err.contains("test/fat:1") && err.contains(&blobs[1]) && err.contains("No space left"),
        "{err}"
    );
    // What was there still runs.
    assert_eq!(images_json(&w).len(), 1);
    w.ok(&["run", "--rm", "test/good:1"]);
}

#[test]
fn resource_and_security_flags_reach_the_spec_and_the_container() {
    if !require_root("resource_and_security_flags_reach_the_spec_and_the_container") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut good = Layout::new();
    good.image(
        "test/flags:1",
        &[(&base, Compression::Gzip)],
        json!({"Cmd": ["sleep", "100"]}),
    );
    w.ok(&["import", good.path().to_str().unwrap()]);

    let c = name("flags");
    w.ok(&[
        "create",
        "--name",
        &c,
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "net_raw",
        "test/flags:1",
    ]);
    let config = w
        .root
        .path()
        .join("lib/containers")
        .join(&c)
        .join("bundle/config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    let r = &spec["linux"]["resources"];
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["cpu"]["shares"], 512);
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["pids"]["limit"], 50);
    assert_eq!(
        spec["process"]["capabilities"]["bounding"],
        json!(["CAP_NET_RAW"])
    );
    assert!(spec["linux"]["seccomp"].is_object());
    w.ok(&["rm", &c]);

    // Swap, reservation, cpuset and OOM score: in the spec and the process.
    let out = w.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpuset-cpus",
        "0",
        "--oom-score-adj",
        "500",
        "--entrypoint",
        "sh",
        "test/flags:1",
        "-c",
        "cat /proc/self/oom_score_adj; grep Cpus_allowed_list /proc/self/status",
    ]);
    assert_eq!(out, "500\nCpus_allowed_list:\t0\n");
    for (args, want) in [
        (&["--memory-swap", "1g"][..], "--memory-swap needs --memory"),
        (
            &["--memory", "64m", "--memory-swap", "32m"],
            "less than --memory",
        ),
        (&["--cpuset-cpus", "0-x"], "--cpuset-cpus \"0-x\""),
        (&["--oom-score-adj", "2000"], "--oom-score-adj 2000"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.push("test/flags:1");
        let e = w.fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // update: the cpuset of a running one, kept in its spec.
    let u = name("cpuset");
    w.ok(&["run", "-d", "--name", &u, "--memory", "64m", "test/flags:1"]);
    w.wait_status(&u, "running", 10);
    w.ok(&["update", "--cpuset-cpus", "0", "--memory-swap", "256m", &u]);
    assert_eq!(
        w.ok(&["exec", &u, "grep", "Cpus_allowed_list", "/proc/1/status"]),
        "Cpus_allowed_list:\t0\n"
    );
    let config = w
        .root
        .path()
        .join("lib/containers")
        .join(&u)
        .join("bundle/config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    assert_eq!(spec["linux"]["resources"]["cpu"]["cpus"], "0");
    assert_eq!(spec["linux"]["resources"]["memory"]["swap"], 256 << 20);
    let e = w.fails(&["update", "--cpuset-mems", "a", &u]);
    assert!(e.contains("--cpuset-mems \"a\""), "{e}");
    w.ok(&["rm", "-f", &u]);

    // --stop-timeout: stop waits that long before SIGKILL; labels show.
    let d = name("stoptime");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &d,
        "--stop-timeout",
        "1",
        "--label",
        "team=edge",
        "--entrypoint",
        "sh",
        "test/flags:1",
        "-c",
        "trap '' TERM; sleep 100",
    ]);
    w.wait_status(&d, "running", 10);
    assert_eq!(w.inspect(&d)["labels"]["team"], "edge");
    let t = std::time::Instant::now();
    w.ok(&["stop", &d]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        t.elapsed()
    );
    w.ok(&["rm", &d]);

    // seccomp=unconfined: no filter in the container; the default has one.
    let status = "grep Seccomp: /proc/self/status";
    let out = w.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "test/flags:1",
        "-c",
        status,
    ]);
    assert!(out.contains("2"), "{out}");
    let out = w.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--entrypoint",
        "sh",
        "test/flags:1",
        "-c",
        status,
    ]);
    assert!(out.trim_end().ends_with('0'), "{out}");

    // Unknown or contradictory flags name themselves.
    let err = w.fails(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=x",
        "test/flags:1",
    ]);
    assert!(err.contains("--security-opt"), "{err}");
    let err = w.fails(&["run", "--rm", "--cap-add", "CAP_BOGUS", "test/flags:1"]);
    assert!(err.contains("CAP_BOGUS"), "{err}");
    let err = w.fails(&[
        "run", "--rm", "--rootfs", "/", "--user", "1", "x", "--", "true",
    ]);
    assert!(err.contains("--user"), "{err}");
    let err = w.fails(&["run", "--rm", "-v", "./relative:/x", "test/flags:1"]);
    assert!(err.contains("--volume"), "{err}");
    let err = w.fails(&["run", "--rm", "-v", "v:/a/../../etc", "test/flags:1"]);
    assert!(err.contains("without .."), "{err}");
    let err = w.fails(&[
        "run",
        "--rm",
        "--mount",
        "type=nfs,target=/x",
        "test/flags:1",
    ]);
    assert!(err.contains("--mount") && err.contains("nfs"), "{err}");
}

#[test]
fn named_volumes_are_filled_from_the_image_and_kept() {
    if !require_root("named_volumes_are_filled_from_the_image_and_kept") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    app_image(&mut layout, &base);
    w.ok(&["import", layout.path().to_str().unwrap()]);

    // A new volume gets the image's /data (whiteouts applied), then keeps
    // what containers write, and is not filled again.
    let out = w.ok(&[
        "run",
        "--rm",
        "-u",
        "0",
        "-v",
        "vol1:/data",
        "test/app:1",
        "ls /data; echo written > /data/x",
    ]);
    assert_eq!(out, "keep\nkeep-link\n");
    let out = w.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data:ro",
        "test/app:1",
        "cat /data/x /data/keep",
    ]);
    assert_eq!(out, "written\nkept\n");
    let ls = w.ok(&["volume", "ls"]);
    assert!(ls.contains("vol1"), "{ls}");

    // In use: rm is refused, naming the container.
    let c = name("voluser");
    w.ok(&["create", "--name", &c, "-v", "vol1:/data", "test/app:1"]);
    let v: Value = serde_json::from_str(&w.ok(&["volume", "inspect", "vol1"])).unwrap();
    assert_eq!(v[0]["used_by"], json!([c.clone()]));
    let err = w.fails(&["volume", "rm", "vol1"]);
    assert!(err.contains(&c) && err.contains("in use"), "{err}");
    // prune takes the unused ones only, and wants -f without a terminal.
    w.ok(&["volume", "create", "spare"]);
    let err = w.fails(&["volume", "prune"]);
    assert!(err.contains("-f"), "{err}");
    assert_eq!(w.ok(&["volume", "prune", "-f"]), "spare\n");
    assert!(w.ok(&["volume", "ls"]).contains("vol1"));
    w.ok(&["rm", &c]);
    w.ok(&["volume", "rm", "vol1"]);
    let err = w.fails(&["volume", "rm", "vol1"]);
    assert!(err.contains("no such volume: vol1"), "{err}");
    // `volume create` makes it empty; the first container fills it.
    w.ok(&["volume", "create", "made"]);
    let out = w.ok(&["run", "--rm", "-v", "made:/data", "test/app:1", "ls /data"]);
    assert_eq!(out, "keep\nkeep-link\n");
    // A path the image lacks leaves the volume empty.
    let out = w.ok(&[
        "run",
        "--rm",
        "-v",
        "other:/nowhere",
        "test/app:1",
        "ls -A /nowhere | wc -l",
    ]);
    assert_eq!(out.trim(), "0");
}

#[test]
fn volume_options_propagate_and_refuse_as_docker_does() {
    if !require_root("volume_options_propagate_and_refuse_as_docker_does") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    app_image(&mut layout, &base);
    w.ok(&["import", layout.path().to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let s = src.to_str().unwrap();
    let mount = |args: &[&str]| {
        let out = wren_tests::run(std::process::Command::new("mount").args(args));
        assert!(out.status.success(), "mount {args:?}: {out:?}");
    };

    // On a private mount, shared or slave propagation could carry
    // nothing: refused, naming the mount, and nothing is made.
    mount(&["--bind", s, s]);
    mount(&["--make-private", s]);
    let before = w.ok(&["list", "-q"]);
    for (opt, want) in [
        ("rshared", "not shared"),
        ("rslave", "neither shared nor a slave"),
    ] {
        let err = w.fails(&[
            "run",
            "-d",
            "-v",
            &format!("{s}:/src:{opt}"),
            "test/app:1",
            "sleep 60",
        ]);
        assert!(
            err.contains(opt) && err.contains(want) && err.contains(s),
            "{err}"
        );
    }
    assert_eq!(w.ok(&["list", "-q"]), before);
    wren_tests::run(std::process::Command::new("umount").arg(s));

    // rslave (-v) and bind-propagation=rslave (--mount): a mount made on
    // the host after the start shows inside; the read-only flag holds.
    let _shared = wren_tests::SharedMount::new(&src);
    let slave = name("slave");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &slave,
        "-u",
        "0",
        "-v",
        &format!("{s}:/src:ro,rslave"),
        "--mount",
        &format!("type=bind,src={s},dst=/src2,readonly,bind-propagation=rslave"),
        "test/app:1",
        "sleep 600",
    ]);
    let sub = src.join("sub");
    std::fs::create_dir(&sub).unwrap();
    mount(&["-t", "tmpfs", "wren-test", sub.to_str().unwrap()]);
    std::fs::write(sub.join("hello"), "from the host\n").unwrap();
    assert_eq!(
        w.ok(&["exec", &slave, "cat", "/src/sub/hello", "/src2/sub/hello"]),
        "from the host\nfrom the host\n"
    );
    let err = w.fails(&["exec", &slave, "touch", "/src/x"]);
    assert!(err.contains("Read-only"), "{err}");
    wren_tests::run(std::process::Command::new("umount").arg(&sub));
    w.ok(&["rm", "-f", &slave]);

    // rshared: what the container mounts under the volume reaches the host.
    let shared = name("shared");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &shared,
        "-u",
        "0",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "-v",
        &format!("{s}:/src:rshared"),
        "test/app:1",
        "sleep 600",
    ]);
    w.ok(&[
        "exec",
        &shared,
        "sh",
        "-c",
        "mount -t tmpfs c /src/sub && echo in > /src/sub/ctr",
    ]);
    assert_eq!(std::fs::read_to_string(sub.join("ctr")).unwrap(), "in\n");
    wren_tests::run(std::process::Command::new("umount").arg(&sub));
    w.ok(&["rm", "-f", &shared]);

    // nocopy: a new named volume stays empty; noexec holds; z is accepted
    // where SELinux is off (and refused, naming it, where it is on).
    let out = w.ok(&[
        "run",
        "--rm",
        "-v",
        "nocp:/data:nocopy",
        "test/app:1",
        "ls -A /data | wc -l",
    ]);
    assert_eq!(out.trim(), "0");
    let out = w.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=nocp2,target=/data,volume-nocopy",
        "test/app:1",
        "ls -A /data | wc -l",
    ]);
    assert_eq!(out.trim(), "0");
    std::fs::write(src.join("tool"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(
        src.join("tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = w.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{s}:/src"),
        "test/app:1",
        "/src/tool",
    ]);
    assert_eq!(out, "ran\n");
    let noexec = w.wren(&[
        "run",
        "--rm",
        "-v",
        &format!("{s}:/src:noexec"),
        "test/app:1",
        "/src/tool",
    ]);
    assert_eq!(noexec.status.code(), Some(126), "{noexec:?}");
    let z = w.wren(&[
        "run",
        "--rm",
        "-v",
        &format!("{s}:/src:z"),
        "test/app:1",
        "true",
    ]);
    if Path::new("/sys/fs/selinux/enforce").exists() {
        assert!(
            String::from_utf8_lossy(&z.stderr).contains("SELinux"),
            "{z:?}"
        );
    } else {
        assert!(z.status.success(), "{z:?}");
    }
    // Bad options are named; nothing is made.
    for (v, want) in [
        (format!("{s}:/src:ro,rw"), "\"ro\" and \"rw\""),
        (format!("{s}:/src:sideways"), "unknown option \"sideways\""),
        (format!("{s}:/src:nocopy"), "nocopy is for a named volume"),
    ] {
        let err = w.fails(&["run", "--rm", "-v", &v, "test/app:1", "true"]);
        assert!(err.contains(want), "{v}: {err}");
    }
    assert_eq!(w.ok(&["list", "-q"]), before);
}

#[test]
fn save_then_import_elsewhere_runs_the_same() {
    if !require_root("save_then_import_elsewhere_runs_the_same") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    app_image(&mut layout, &base);
    w.ok(&["import", layout.path().to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.tar");
    w.ok(&["save", "-o", out.to_str().unwrap(), "test/app:1"]);

    // Another wrend, another store: the saved tar imports and runs with
    // the same files, whiteouts, hard link, setuid bit, owners and config.
    let w2 = Wrend::start(&[]);
    let imported = w2.ok(&["import", out.to_str().unwrap()]);
    assert!(imported.contains("docker.io/test/app:1"), "{imported}");
    let script = "id -u; pwd; echo $GREETING; ls /data; ls /opq; \
                  stat -c '%a %u %h' /bin/suid /data/keep";
    let got = w2.ok(&["run", "--rm", "test/app:1", script]);
    assert_eq!(
        got,
        "1000\n/data\nhello\nkeep\nkeep-link\nnew\n4755 0 1\n644 1000 2\n"
    );
    assert!(!Path::new(&format!("{}.tmp", out.display())).exists());
}

/// One line of the container's /proc/self/status, e.g. `CapEff`.
fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .trim()
        .to_string()
}

/// Imports `name`: the base layer, its entrypoint `sh -c` (a test's
/// command is one shell line).
fn shell_image(w: &Wrend, name: &str) {
    let mut layout = Layout::new();
    layout.image(
        name,
        &[(&base(), Compression::Gzip)],
        json!({"Entrypoint": ["sh", "-c"], "Cmd": ["true"]}),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
}

#[test]
fn devices_ulimits_sysctls_and_shm_size_reach_the_container() {
    if !require_root("devices_ulimits_sysctls_and_shm_size_reach_the_container") {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        skip(
            "devices_ulimits_sysctls_and_shm_size_reach_the_container",
            Skip::Host("no /dev/fuse on this host".into()),
        );
        return;
    }
    let w = Wrend::start(&[]);
    shell_image(&w, "test/dev:1");
    // /dev/fuse (10:229) is not among the devices every container gets:
    // opening it shows both the node and the device-cgroup rule.
    let opens = "(exec 3</dev/fuse) && echo OPEN-R; (exec 4>/dev/fuse) && echo OPEN-W";
    let probe = format!(
        "ls -l /dev/fuse; {opens}; \
         echo nofile=$(ulimit -n):$(ulimit -Hn) core=$(ulimit -c); \
         cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmax; \
         grep ' /dev/shm ' /proc/mounts"
    );
    let out = w.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/fuse",
        "--ulimit",
        "nofile=4096:8192",
        "--ulimit",
        "core=0",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=80",
        "--sysctl",
        "kernel.shmmax=1073741824",
        "--shm-size",
        "8m",
        "test/dev:1",
        &probe,
    ]);
    assert!(
        out.contains("10, 229") && out.contains("OPEN-R\nOPEN-W"),
        "{out}"
    );
    assert!(out.contains("nofile=4096:8192 core=0"), "{out}");
    assert!(out.contains("\n80\n1073741824\n"), "{out}");
    assert!(out.contains("size=8192k"), "{out}");
    // Read-only at another path: opened for reading, not for writing.
    let out = w.wren(&[
        "run",
        "--rm",
        "--device",
        "/dev/fuse:/dev/fuse-ro:r",
        "test/dev:1",
        &opens.replace("/dev/fuse", "/dev/fuse-ro"),
    ]);
    let text = format!(
        "{}{}",
        wren_tests::text(&out.stdout),
        wren_tests::text(&out.stderr)
    );
    assert!(
        text.contains("OPEN-R")
            && !text.contains("OPEN-W")
            && text.contains("Operation not permitted"),
        "{text}"
    );
    // Without --device the node is not there, and one made by hand is
    // refused by the device cgroup.
    let out = w.wren(&[
        "run",
        "--rm",
        "test/dev:1",
        "test ! -e /dev/fuse && mknod /tmp/fuse c 10 229 && exec 3</tmp/fuse",
    ]);
    let text = format!(
        "{}{}",
        wren_tests::text(&out.stdout),
        wren_tests::text(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("Operation not permitted"),
        "{text}"
    );

    let before = w.ok(&["list"]);
    for (args, want) in [
        (
            vec!["--device", "/etc/passwd"],
            "--device \"/etc/passwd\": /etc/passwd is not a device node",
        ),
        (
            vec!["--device", "/dev/no-such"],
            "--device \"/dev/no-such\": /dev/no-such: No such file",
        ),
        (
            vec!["--device", "/dev/net/tun:/dev/t:rwx"],
            "permissions \"rwx\"",
        ),
        (
            vec!["--ulimit", "nofile=10:5"],
            "--ulimit \"nofile=10:5\": the soft limit is above the hard one",
        ),
        (vec!["--ulimit", "files=10"], "unknown limit \"files\""),
        (
            vec!["--sysctl", "kernel.core_pattern=x"],
            "not a namespaced sysctl",
        ),
        (
            vec!["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "shares the host's network settings",
        ),
        (vec!["--shm-size", "lots"], "--shm-size: invalid size"),
        (
            vec!["--device-cgroup-rule", "c 10:229"],
            "--device-cgroup-rule \"c 10:229\": want TYPE MAJOR:MINOR ACCESS",
        ),
    ] {
        let mut a = vec!["run", "-d", "--name", "bad-dev"];
        a.extend(args);
        a.extend(["test/dev:1", "sleep 100"]);
        let e = w.fails(&a);
        assert!(e.contains(want), "{a:?}: {e}");
        assert_eq!(w.ok(&["list"]), before, "{a:?} left a container");
    }
}

#[test]
fn a_device_cgroup_rule_allows_a_node_the_container_makes() {
    if !require_root("a_device_cgroup_rule_allows_a_node_the_container_makes") {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        // Without the driver the node would not open even when allowed.
        skip(
            "a_device_cgroup_rule_allows_a_node_the_container_makes",
            Skip::Host("no /dev/fuse on this host".into()),
        );
        return;
    }
    let w = Wrend::start(&[]);
    shell_image(&w, "test/rule:1");
    // 10:229 (fuse) is not among the devices every container may use: a
    // node made with mknod opens only under a rule that allows it (the
    // rule with a wildcard minor, as for hot-plugged USB serial ports).
    let probe = "mknod /dev/f c 10 229 && (exec 3</dev/f) && echo OPENED";
    let denied = w.wren(&["run", "--rm", "test/rule:1", probe]);
    assert!(
        !String::from_utf8_lossy(&denied.stdout).contains("OPENED"),
        "{denied:?}"
    );
    for rule in ["c 10:229 rwm", "c 10:* r"] {
        let out = w.ok(&[
            "run",
            "--rm",
            "--device-cgroup-rule",
            rule,
            "test/rule:1",
            probe,
        ]);
        assert_eq!(out, "OPENED\n", "{rule}");
    }
    // Write is not read: a read-only rule refuses opening for writing.
    let w_only = w.wren(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 10:229 r",
        "test/rule:1",
        "mknod /dev/f c 10 229 && (exec 3>/dev/f) && echo OPENED",
    ]);
    assert!(
        !String::from_utf8_lossy(&w_only.stdout).contains("OPENED"),
        "{w_only:?}"
    );
}

/// `--ipc shareable` and `--ipc container:NAME`, as Docker has them: the
/// joiner gets NAME's IPC namespace and its /dev/shm (a tmpfs wrend
/// mounts outside NAME, of NAME's --shm-size), follows NAME into a new
/// namespace when NAME starts again, and a private NAME is refused; the
/// tmpfs goes with NAME.
#[test]
fn a_shareable_ipc_namespace_and_its_shm_are_joined() {
    if !require_root("a_shareable_ipc_namespace_and_its_shm_are_joined") {
        return;
    }
    let w = Wrend::start(&[]);
    shell_image(&w, "test/ipc:1");
    let (x, j) = (name("ipc-x"), name("ipc-j"));
    w.ok(&[
        "run",
        "-d",
        "--name",
        &x,
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "--stop-timeout",
        "1",
        "test/ipc:1",
        "exec sleep 1000",
    ]);
    w.ok(&["exec", &x, "sh", "-c", "echo from-x > /dev/shm/f"]);
    let join = format!("container:{x}");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &j,
        "--ipc",
        &join,
        "test/ipc:1",
        "exec sleep 1001",
    ]);
    let ipc_ns = |c: &str| w.ok(&["exec", c, "readlink", "/proc/self/ns/ipc"]);
    assert_eq!(ipc_ns(&j), ipc_ns(&x));
    assert_ne!(
        Path::new(ipc_ns(&x).trim()),
        std::fs::read_link("/proc/self/ns/ipc").unwrap()
    );
    assert_eq!(w.ok(&["exec", &j, "cat", "/dev/shm/f"]), "from-x\n");
    w.ok(&["exec", &j, "sh", "-c", "echo from-j > /dev/shm/g"]);
    assert_eq!(w.ok(&["exec", &x, "cat", "/dev/shm/g"]), "from-j\n");
    // X's size, in both.
    for c in [&x, &j] {
        let df = w.ok(&["exec", c, "df", "-k", "/dev/shm"]);
        assert!(
            df.lines()
                .nth(1)
                .is_some_and(|l| l.split_whitespace().nth(1) == Some("8192")),
            "{df}"
        );
    }
    // A private container cannot be joined; X's /dev/shm is X's to size;
    // nothing is made.
    let (p, bad) = (name("ipc-p"), name("ipc-bad"));
    w.ok(&["run", "-d", "--name", &p, "test/ipc:1", "exec sleep 1002"]);
    let e = w.fails(&[
        "run",
        "-d",
        "--name",
        &bad,
        "--ipc",
        &format!("container:{p}"),
        "test/ipc:1",
    ]);
    assert!(
        e.contains(&format!(
            "{p}'s IPC is private: make {p} with --ipc shareable"
        )),
        "{e}"
    );
    for (extra, want) in [
        (
            ["--shm-size", "1m"],
            format!("--shm-size cannot go with --ipc {join}"),
        ),
        (
            ["--sysctl", "kernel.shmmax=1"],
            "shares that container's IPC settings".to_string(),
        ),
    ] {
        let mut args = vec!["run", "-d", "--name", &bad, "--ipc", &join];
        args.extend(extra);
        args.push("test/ipc:1");
        let e = w.fails(&args);
        assert!(e.contains(&want), "{args:?}: {e}");
    }
    assert_eq!(w.status(&bad), "");
    // X started again: the joiner follows it into its new namespace; the
    // /dev/shm stays (as Docker keeps a shareable container's).
    let old = ipc_ns(&x);
    w.ok(&["restart", "-t", "1", &x]);
    assert!(
        wait_for(10, || w.status(&j) == "running"
            && ipc_ns(&j) == ipc_ns(&x)
            && ipc_ns(&x) != old),
        "{}",
        w.log()
    );
    assert_eq!(w.ok(&["exec", &j, "cat", "/dev/shm/f"]), "from-x\n");
    let e = w.fails(&["rm", "-f", &x]);
    assert!(e.contains("remove it first"), "{e}");
    w.ok(&["rm", "-f", &j, &p]);
    w.ok(&["rm", "-f", &x]);
    for c in [&x, &j, &p] {
        w.assert_clean(c);
    }
}

#[test]
fn host_pid_ipc_and_uts_namespaces_are_shared_on_request() {
    if !require_root("host_pid_ipc_and_uts_namespaces_are_shared_on_request") {
        return;
    }
    let w = Wrend::start(&[]);
    shell_image(&w, "test/ns:1");
    let ns = |kind: &str| std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
    let probe = "for n in pid ipc uts; do readlink /proc/self/ns/$n; done; \
                 hostname; cat /etc/hostname; grep ' /dev/shm ' /proc/mounts | cut -d' ' -f1,3";
    // Private by default and with `private`: none of the test's own.
    for extra in [
        vec![],
        vec!["--pid", "private", "--ipc", "private", "--uts", "private"],
    ] {
        let c = name("ns-own");
        let mut a = vec!["run", "--rm", "--name", &c];
        a.extend(extra);
        a.extend(["test/ns:1", probe]);
        let out = w.ok(&a);
        let l: Vec<&str> = out.lines().collect();
        for (i, kind) in ["pid", "ipc", "uts"].iter().enumerate() {
            assert_ne!(Path::new(l[i]), ns(kind), "{kind}: {out}");
        }
        assert_eq!(l[3], c, "{out}");
        assert_eq!(l[5], "shm tmpfs", "{out}");
    }
    // host: the test's own (wrend runs in them), the host's hostname in
    // /etc/hostname too, the host's /dev/shm.
    let marker = format!("/dev/shm/wren-test-{}", std::process::id());
    std::fs::write(&marker, "shared\n").unwrap();
    let out = w.ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "--ipc",
        "host",
        "--uts",
        "host",
        "test/ns:1",
        &format!("{probe}; cat {marker}; ps -o pid | grep -cx ' *1'"),
    ]);
    let _ = std::fs::remove_file(&marker);
    let l: Vec<&str> = out.lines().collect();
    for (i, kind) in ["pid", "ipc", "uts"].iter().enumerate() {
        assert_eq!(Path::new(l[i]), ns(kind), "{kind}: {out}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(l[3], host.trim(), "{out}");
    assert_eq!(l[4], host.trim(), "{out}");
    assert_eq!(l[6], "shared", "{out}");
    // Processes a --pid host container leaves behind go with it.
    let c = name("ns-host");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &c,
        "--pid",
        "host",
        "test/ns:1",
        "sleep 987654 & exec sleep 987655",
    ]);
    let pids = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\0987654\0")
            })
            .count()
    };
    assert!(wait_for(5, || pids() == 1), "the background sleep");
    w.ok(&["stop", "-t", "1", &c]);
    assert!(wait_for(5, || pids() == 0), "left behind");
    w.ok(&["rm", &c]);
    // Refused, named, nothing made.
    let before = w.ok(&["list"]);
    for (args, want) in [
        (vec!["--uts", "container:other"], "no such container other"),
        (vec!["--pid", "container:other"], "no such container other"),
        (
            vec!["--ipc", "bogus"],
            "--ipc \"bogus\": want private, host, shareable or container:NAME",
        ),
        (
            vec!["--uts", "host", "--hostname", "x"],
            "--hostname cannot go with --uts host",
        ),
        (
            vec!["--ipc", "host", "--shm-size", "1g"],
            "--shm-size cannot go with --ipc host",
        ),
        (
            vec!["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
            "shares the host's IPC settings",
        ),
        (
            vec!["--uts", "host", "--sysctl", "kernel.domainname=x"],
            "shares the host's hostname",
        ),
    ] {
        let mut a = vec!["run", "-d"];
        a.extend(args);
        a.extend(["test/ns:1", "sleep 100"]);
        let e = w.fails(&a);
        assert!(e.contains(want), "{a:?}: {e}");
        assert_eq!(w.ok(&["list"]), before, "{a:?} left a container");
    }
}

/// `--uts container:NAME`, as Podman has it: the joiner is in NAME's UTS
/// namespace with NAME's hostname (in /etc/hostname too) and renames
/// nothing; NAME cannot be removed while joined, and a restarted NAME
/// takes its joiner into its new namespace. What would set a hostname on
/// the joiner, or join a joiner, is refused and leaves nothing.
#[test]
fn a_uts_namespace_is_joined_with_its_hostname() {
    if !require_root("a_uts_namespace_is_joined_with_its_hostname") {
        return;
    }
    let w = Wrend::start(&[]);
    shell_image(&w, "test/uts:1");
    let (x, j) = (name("uts-x"), name("uts-j"));
    w.ok(&[
        "run",
        "-d",
        "--name",
        &x,
        "--hostname",
        "xhost",
        "test/uts:1",
        "sleep 1000",
    ]);
    let join = format!("container:{x}");
    w.ok(&[
        "run",
        "-d",
        "--name",
        &j,
        "--uts",
        &join,
        "test/uts:1",
        "sleep 1000",
    ]);
    let probe = "readlink /proc/self/ns/uts; hostname; cat /etc/hostname";
    let lines = |c: &str| -> Vec<String> {
        w.ok(&["exec", c, "sh", "-c", probe])
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (lx, lj) = (lines(&x), lines(&j));
    assert_eq!(lj[0], lx[0], "not in {x}'s UTS namespace");
    assert_eq!(lj[1..], ["xhost", "xhost"], "{lj:?}");
    // The joiner's start did not rename the container it joined.
    assert_eq!(lx[1..], ["xhost", "xhost"], "{lx:?}");
    assert_eq!(w.inspect(&j)["uts_mode"], join.as_str());
    let e = w.fails(&["rm", "-f", &x]);
    assert!(e.contains(&format!("namespaces that {j} joins")), "{e}");

    // X started again: the joiner follows it into its new namespace.
    let pid = w.inspect(&j)["pid"].clone();
    w.ok(&["restart", "-t", "1", &x]);
    assert!(
        wait_for(10, || {
            let i = w.inspect(&j);
            i["status"] == "running" && i["pid"] != pid
        }),
        "{}",
        w.log()
    );
    let (lx2, lj2) = (lines(&x), lines(&j));
    assert_ne!(lx2[0], lx[0], "{x} kept its namespace");
    assert_eq!(lj2[0], lx2[0], "{j} did not follow {x}");

    // Refused, named, nothing made.
    let before = w.ok(&["list"]);
    let via_j = format!("container:{j}");
    for (args, want) in [
        (
            vec!["--uts", join.as_str(), "--hostname", "y"],
            format!("--hostname cannot go with --uts {join}"),
        ),
        (
            vec!["--uts", "container:nosuch"],
            "no such container nosuch".to_string(),
        ),
        (
            vec!["--uts", via_j.as_str()],
            format!("{j} is in the UTS namespace of {x}: join {x}'s"),
        ),
        (
            vec!["--uts", join.as_str(), "--sysctl", "kernel.domainname=z"],
            "shares that container's hostname".to_string(),
        ),
        (
            vec!["--uts", "container:"],
            "want container:NAME".to_string(),
        ),
    ] {
        let mut a = vec!["run", "-d"];
        a.extend(args.iter().copied());
        a.extend(["test/uts:1", "sleep 100"]);
        let e = w.fails(&a);
        assert!(e.contains(&want), "{a:?}: {e}");
        assert_eq!(w.ok(&["list"]), before, "{a:?} left a container");
    }
    w.ok(&["rm", "-f", &j]);
    w.ok(&["rm", "-f", &x]);
    w.assert_clean(&j);
    w.assert_clean(&x);
}

#[test]
fn privileged_and_security_opts_reach_the_container() {
    if !require_root("privileged_and_security_opts_reach_the_container") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    layout.image(
        "test/priv:1",
        &[(&base, Compression::Gzip)],
        json!({"Entrypoint": ["sh", "-c"], "Cmd": ["true"]}),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    // A host device the default container does not get, opened to check
    // the device cgroup too.
    let dev = ["/dev/loop-control", "/dev/kmsg", "/dev/mem"]
        .into_iter()
        .find(|d| Path::new(d).exists())
        .expect("a host device to check");
    let probe = format!(
        "cat /proc/self/status; grep -E ' /(sys|sys/fs/cgroup|proc/sys|proc/kcore) ' /proc/self/mounts; \
         echo ptmx=$(readlink /dev/ptmx); exec 3<{dev} && echo DEVICE-OPENED"
    );

    let out = w.ok(&["run", "--rm", "--privileged", "test/priv:1", &probe]);
    assert_eq!(
        status_field(&out, "CapEff"),
        status_field(&host, "CapBnd"),
        "{out}"
    );
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0", "{out}");
    assert!(out.contains("DEVICE-OPENED"), "{dev} not usable: {out}");
    assert!(out.contains("ptmx=pts/ptmx"), "the host's ptmx: {out}");
    assert!(!out.contains(" /proc/sys "), "read-only /proc/sys: {out}");
    assert!(!out.contains(" /proc/kcore "), "masked /proc/kcore: {out}");
    for m in [" /sys sysfs rw", " /sys/fs/cgroup "] {
        let line = out
            .lines()
            .find(|l| l.contains(m))
            .unwrap_or_else(|| panic!("{m}: {out}"));
        assert!(line.contains(" rw,") || line.contains(" rw "), "{line}");
    }
    // Privileged less a dropped capability.
    let out = w.ok(&[
        "run",
        "--rm",
        "--privileged",
        "--cap-drop",
        "sys_admin",
        "test/priv:1",
        "grep CapEff /proc/self/status",
    ]);
    let eff = u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap();
    assert_eq!(eff & (1 << 21), 0, "CAP_SYS_ADMIN kept: {out}");
    assert_ne!(eff & (1 << 12), 0, "CAP_NET_ADMIN lost: {out}");

    // The default: filter, no_new_privs, masked paths, no host devices.
    let out = w.fails(&["run", "--rm", "test/priv:1", &probe]);
    assert!(!out.contains("DEVICE-OPENED"), "{out}");
    let out = w.ok(&["run", "--rm", "test/priv:1", "cat /proc/self/status"]);
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");

    // no-new-privileges both ways; label=disable and apparmor=unconfined
    // are what wren does anyway on this host.
    for (opt, want) in [
        ("no-new-privileges:false", "0"),
        ("no-new-privileges=true", "1"),
        ("no-new-privileges", "1"),
    ] {
        let out = w.ok(&[
            "run",
            "--rm",
            "--security-opt",
            opt,
            "--security-opt",
            "label=disable",
            "--security-opt",
            "apparmor=unconfined",
            "test/priv:1",
            "cat /proc/self/status",
        ]);
        assert_eq!(status_field(&out, "NoNewPrivs"), want, "{opt}: {out}");
    }
    let out = w.ok(&[
        "run",
        "--rm",
        "--privileged",
        "--security-opt",
        "no-new-privileges",
        "test/priv:1",
        "cat /proc/self/status",
    ]);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");

    // Refused, naming the flag and leaving no container behind.
    let before = w.ok(&["list"]);
    let profile = w.root.path().join("profile.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    for (args, want) in [
        (
            vec!["--privileged", "--security-opt", seccomp.as_str()],
            "--privileged",
        ),
        (
            vec!["--security-opt", "label=type:spc_t"],
            "label=type:spc_t",
        ),
        (
            vec!["--security-opt", "apparmor=docker-default"],
            "apparmor=docker-default",
        ),
        (
            vec!["--security-opt", "no-new-privileges:maybe"],
            "no-new-privileges",
        ),
        (
            vec!["--security-opt", "systempaths=unconfined"],
            "systempaths",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.push("test/priv:1");
        let err = w.fails(&a);
        assert!(
            err.contains("--security-opt") && err.contains(want),
            "{a:?}: {err}"
        );
    }
    let err = w.fails(&[
        "run",
        "--rm",
        "--rootfs",
        "/",
        "--privileged",
        "x",
        "--",
        "true",
    ]);
    assert!(err.contains("--privileged"), "{err}");
    assert_eq!(w.ok(&["list"]), before);
}

/// The states of every process of a running container, seen from inside.
fn states(w: &Wrend, c: &str) -> String {
    w.ok(&["exec", c, "sh", "-c", "cat /proc/[0-9]*/stat"])
}

/// `Kb` of one `/proc/PID/smaps_rollup` line.
fn smaps_kb(pid: u64, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {s}"))
}

#[test]
fn init_reaps_zombies_forwards_signals_and_passes_the_status() {
    if !require_root("init_reaps_zombies_forwards_signals_and_passes_the_status") {
        return;
    }
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    layout.image(
        "test/init:1",
        &[(&base, Compression::Gzip)],
        json!({"Entrypoint": ["sh", "-c"], "Cmd": ["true"]}),
    );
    w.ok(&["import", layout.path().to_str().unwrap()]);
    // An orphan that exits at once: whoever is pid 1 inherits its zombie.
    let orphan = "(sleep 0.1 &); exec sleep 100";

    let plain = name("noinit");
    w.ok(&["run", "-d", "--name", &plain, "test/init:1", orphan]);
    w.wait_status(&plain, "running", 10);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let st = states(&w, &plain);
    assert!(st.contains(" Z "), "no zombie without --init: {st}");
    w.ok(&["rm", "-f", &plain]);

    let c = name("init");
    w.ok(&["run", "-d", "--init", "--name", &c, "test/init:1", orphan]);
    w.wait_status(&c, "running", 10);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let st = states(&w, &c);
    assert!(!st.contains(" Z "), "a zombie with --init: {st}");
    assert!(
        st.starts_with("1 (wren-init) S ") || st.contains("\n1 (wren-init) S "),
        "{st}"
    );
    assert!(
        st.contains("2 (sleep) S 1 "),
        "the process is not pid 2: {st}"
    );
    // The reaper's memory, from the host.
    let pid = w.inspect(&c)["pid"].as_u64().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "wren-init");
    let (rss, pss) = (smaps_kb(pid, "Rss"), smaps_kb(pid, "Pss"));
    println!("init reaper: Rss {rss} kB, Pss {pss} kB");
    w.ok(&["rm", "-f", &c]);

    // SIGTERM to the container reaches the process through the reaper,
    // and its exit code comes back.
    let t = name("initterm");
    w.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        &t,
        "test/init:1",
        "trap 'echo got-term; exit 7' TERM; while :; do sleep 0.1; done",
    ]);
    w.wait_status(&t, "running", 10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    w.ok(&["kill", "-s", "TERM", &t]);
    w.wait_status(&t, "stopped", 10);
    assert_eq!(w.inspect(&t)["exit_status"], 7);
    assert!(w.ok(&["logs", &t]).contains("got-term"));
    w.ok(&["rm", &t]);

    // Foreground: the exit code, and 128 + the signal that killed it.
    for (cmd, want) in [("exit 42", 42), ("kill -KILL $$", 137), ("true", 0)] {
        let out = w.wren(&["run", "--rm", "--init", "test/init:1", cmd]);
        assert_eq!(out.status.code(), Some(want), "{cmd}: {out:?}");
    }
    // A command that does not exist fails `run`, naming it.
    let err = w.fails(&[
        "run",
        "--rm",
        "--init",
        "--entrypoint",
        "/no/such",
        "test/init:1",
    ]);
    assert!(err.contains("/no/such"), "{err}");
    let err = w.fails(&["run", "--rm", "--rootfs", "/", "--init", "x", "--", "true"]);
    assert!(err.contains("--init"), "{err}");
}

#[test]
fn save_keeps_the_pulled_and_imported_digests() {
    let test = "save_keeps_the_pulled_and_imported_digests";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    let mut layout = Layout::new();
    let (app_id, app_blobs) = app_image(&mut layout, &base);
    reg.push(&layout, "test/app:1", "team/app:1");
    let pulled = format!("{}/team/app:1", reg.addr);
    w.ok(&["pull", "--insecure-registry", &reg.addr, &pulled]);
    w.ok(&["import", layout.path().to_str().unwrap()]);

    let dir = tempfile::tempdir().unwrap();
    for (image, want_id) in [(pulled.as_str(), None), ("test/app:1", Some(&app_id))] {
        let v: Value = serde_json::from_str(&w.ok(&["image", "inspect", image])).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        if let Some(want) = want_id {
            assert_eq!(&id, want, "import changed the id");
        }
        let digests: Vec<String> = v["manifest"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(digests.len(), 3, "{v}");
        let out = dir.path().join("saved.tar");
        w.ok(&["save", "-o", out.to_str().unwrap(), image]);

        // skopeo reads the same manifest digest and layer digests.
        let sk = wren_tests::run(
            std::process::Command::new("skopeo")
                .args(["inspect", &format!("oci-archive:{}", out.display())]),
        );
        assert!(sk.status.success(), "{sk:?}");
        let sk: Value = serde_json::from_slice(&sk.stdout).unwrap();
        assert_eq!(sk["Digest"], id.as_str(), "{sk}");
        assert_eq!(sk["Layers"], json!(digests), "{sk}");
        if want_id.is_some() {
            assert_eq!(digests, app_blobs, "layout blobs");
        }

        // rmi, prune, import: the same image id and layers again.
        w.ok(&["rmi", image]);
        let _ = w.ok(&["image", "prune"]);
        w.ok(&["import", out.to_str().unwrap()]);
        let v: Value = serde_json::from_str(&w.ok(&["image", "inspect", image])).unwrap();
        assert_eq!(v["id"], id.as_str(), "{v}");
        let again: Vec<&str> = v["manifest"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(again, digests);
        let got = w.ok(&["run", "--rm", image, "echo $GREETING; ls /opq"]);
        assert_eq!(got, "hello\nnew\n");
    }
}

/// A TCP proxy on 127.0.0.1 to `upstream` that sends the registry's
/// answers on at about `rate` bytes a second, so a pull can be killed in
/// the middle of a layer. Its threads end with the test process.
fn slow_proxy(upstream: &str, rate: u64) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let pause = std::time::Duration::from_micros(8192 * 1_000_000 / rate);
                loop {
                    match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c_out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            std::thread::sleep(pause);
                        }
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A TCP proxy on 127.0.0.1 to `upstream` that cuts each of its first
/// `cuts` connections that asked for something naming `marker` (a
/// layer's digest) once its answers pass `after` bytes, as a flaky link
/// would.
fn cutting_proxy(upstream: &str, marker: &str, after: usize, cuts: usize) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (upstream, marker) = (upstream.to_string(), marker.to_string());
    let left = Arc::new(AtomicUsize::new(cuts));
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let asked = Arc::new(AtomicBool::new(false));
            let (seen, marker) = (asked.clone(), marker.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match c_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if String::from_utf8_lossy(&buf[..n]).contains(&marker) {
                                seen.store(true, Ordering::SeqCst);
                            }
                            if s_out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            let left = left.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut sent = 0;
                loop {
                    match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c_out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if asked.load(Ordering::SeqCst) {
                                sent += n;
                            }
                            if sent > after
                                && left
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| {
                                        k.checked_sub(1)
                                    })
                                    .is_ok()
                            {
                                let _ = c_out.shutdown(std::net::Shutdown::Both);
                                let _ = s_in.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                        }
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn a_pull_cut_off_is_retried_and_resumes() {
    let test = "a_pull_cut_off_is_retried_and_resumes";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    // 4 MiB that do not compress: the layer a link cuts in the middle.
    let layer = Layer::new().file("big", 0o644, &noise(4 << 20)).finish();
    let mut l = Layout::new();
    let (_, blobs) = l.image(
        "v1",
        &[(&base, Compression::Gzip), (&layer, Compression::None)],
        json!({"Cmd": ["sh", "-c", "wc -c < /big"]}),
    );
    reg.push(&l, "v1", "team/big:1");
    // skopeo compresses the layer on its way in, so its digest there is
    // not ours: the proxy cuts any blob's answer past 1.6 MB, which only
    // the big layer reaches (the base is ~1.2 MB).
    let _ = blobs;
    let proxy = cutting_proxy(&reg.addr, "/blobs/", 1_600_000, 3);
    let image = format!("{proxy}/team/big:1");

    // No retries: the cut is the pull's error, naming the layer; what
    // came is kept for the next pull.
    let err = w.fails(&[
        "pull",
        "--retry",
        "0",
        "--insecure-registry",
        &proxy,
        &image,
    ]);
    assert!(
        err.contains("download") && !err.contains("retrying"),
        "{err}"
    );
    assert!(!partials(&w).is_empty(), "{err}");
    assert!(images_json(&w).is_empty());

    // Retried: each try resumes where the last stopped (1.6 MB kept by
    // the first pull, 1.6 more by this one's first try, then the rest).
    let out = wren_tests::run(w.cmd().args([
        "pull",
        "--retry-delay",
        "100ms",
        "--insecure-registry",
        &proxy,
        &image,
    ]));
    let (stdout, stderr) = (wren_tests::text(&out.stdout), wren_tests::text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying in 100.0ms (retry 1 of 3)") && !stderr.contains("retry 2 of 3"),
        "{stderr}"
    );
    // The last try fetched only the rest of the big layer.
    assert!(figure(&stdout, "bytes fetched") < 1_600_000, "{stdout}");
    assert_eq!(w.ok(&["run", "--rm", &image]).trim(), (4 << 20).to_string());
    assert!(tmp_empty(&w));

    // What cannot get better is not retried: a tag the registry lacks.
    let err = w.fails(&[
        "pull",
        "--insecure-registry",
        &proxy,
        &format!("{proxy}/team/big:nope"),
    ]);
    assert!(
        err.contains("big:nope") && !err.contains("retrying"),
        "{err}"
    );
}

/// Size of each `*.partial` in the store's tmp/, by layer hex.
fn partials(w: &Wrend) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_dir(w.root.path().join("lib/images/tmp"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let hex = n.strip_suffix(".partial")?.to_string();
                    Some((hex, e.metadata().ok()?.len()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `n` random bytes (nothing compresses them).
fn noise(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut v).unwrap();
    v
}

#[test]
fn a_killed_pull_resumes_its_layer() {
    let test = "a_killed_pull_resumes_its_layer";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    // 6 MiB that gzip cannot shrink.
    let big = Layer::new().file("big", 0o644, &noise(6 << 20)).finish();
    let mut layout = Layout::new();
    let (_, blobs) = layout.image(
        "big",
        &[(&base, Compression::Gzip), (&big, Compression::Gzip)],
        json!({"Cmd": ["wc", "-c", "/big"]}),
    );
    reg.push(&layout, "big", "team/big:1");
    let size = |d: &str| std::fs::metadata(layout.blob_path(d)).unwrap().len();
    let big_hex = blobs[1].trim_start_matches("sha256:").to_string();

    // At 2 MiB/s through the proxy: killed with some MiB of the layer in.
    let proxy = slow_proxy(&reg.addr, 2 << 20);
    let mut child = w
        .cmd()
        .args([
            "pull",
            "--insecure-registry",
            &proxy,
            &format!("{proxy}/team/big:1"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while partials(&w).get(&big_hex).copied().unwrap_or(0) < 1 << 20 {
        assert!(
            t.elapsed().as_secs() < 30,
            "no partial layer: {:?}",
            partials(&w)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended too soon"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = partials(&w);
    let k = kept[&big_hex];
    assert!(k < size(&blobs[1]), "whole layer kept: {k}");
    assert!(!layers(&w).contains(&big_hex), "a half layer is visible");
    assert!(images_json(&w).is_empty());

    // The second pull (no proxy) fetches only what is missing, exactly:
    // the rest of each cut-off layer, nothing of a finished one.
    let installed = layers(&w);
    let want: u64 = blobs
        .iter()
        .map(|d| d.trim_start_matches("sha256:"))
        .filter(|hex| !installed.iter().any(|l| l == hex))
        .map(|hex| size(&format!("sha256:{hex}")) - kept.get(hex).copied().unwrap_or(0))
        .sum();
    let direct = format!("{}/team/big:1", reg.addr);
    let out = w.ok(&["pull", "--insecure-registry", &reg.addr, &direct]);
    println!(
        "resumed pull: {out} (kept {kept:?}, layers {:?})",
        blobs.iter().map(|d| size(d)).collect::<Vec<_>>()
    );
    assert_eq!(figure(&out, "bytes fetched"), want, "{out} (kept {kept:?})");
    assert!(figure(&out, "bytes fetched") < size(&blobs[1]) - k + size(&blobs[0]) + 1);
    assert_eq!(
        w.ok(&["run", "--rm", &direct]),
        format!("{} /big\n", 6 << 20)
    );
    assert!(tmp_empty(&w), "{:?}", partials(&w));
    // The kept blob is the layer's, byte for byte.
    let blob = std::fs::read(w.root.path().join("lib/images/blobs/sha256").join(&big_hex)).unwrap();
    assert_eq!(wren_tests::registry::sha256(&blob), blobs[1]);
}

/// Image `tag` of the auto-update test: the base, `/version` holding
/// `version`, `/ok` when `ok`, and `entrypoint` if given.
fn versioned(
    l: &mut Layout,
    base: &[u8],
    tag: &str,
    version: &str,
    ok: bool,
    entrypoint: Option<&str>,
) -> String {
    let mut layer = Layer::new().file("version", 0o644, format!("{version}\n").as_bytes());
    if ok {
        layer = layer.file("ok", 0o644, b"ok\n");
    }
    let mut config = json!({"Cmd": ["sleep", "1000"], "Env": ["PATH=/bin", "FROM_IMAGE=1"]});
    if let Some(e) = entrypoint {
        config["Entrypoint"] = json!([e]);
    }
    l.image(
        tag,
        &[
            (base, Compression::Gzip),
            (&layer.finish(), Compression::Gzip),
        ],
        config,
    )
    .0
}

#[test]
fn auto_update_follows_the_registry_and_rolls_back() {
    let test = "auto_update_follows_the_registry_and_rolls_back";
    if !require_root(test) || !registry_tools(test) {
        return;
    }
    let reg = wren_tests::registry::Registry::start();
    let w = Wrend::start(&[]);
    let base = base();
    let mut l = Layout::new();
    let v1 = versioned(&mut l, &base, "v1", "1", true, None);
    let v2 = versioned(&mut l, &base, "v2", "2", true, None);
    let v3 = versioned(&mut l, &base, "v3", "3", true, Some("/bin/false"));
    let v4 = versioned(&mut l, &base, "v4", "4", false, None);
    let image = format!("{}/team/app:latest", reg.addr);
    reg.push(&l, "v1", "team/app:latest");
    reg.push(&l, "v1", "team/app:one");
    let id = |name: &str| -> String {
        let v: Value = serde_json::from_str(&w.ok(&["inspect", name])).unwrap();
        v["image_id"].as_str().unwrap_or_default().to_string()
    };
    let version = |name: &str| w.ok(&["exec", name, "cat", "/version"]);
    let update = |args: &[&str]| {
        let mut all = vec!["auto-update", "--timeout", "20"];
        all.extend_from_slice(args);
        w.wren(&all)
    };
    let row = |out: &std::process::Output, name: &str| -> String {
        wren_tests::text(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_default()
            .to_string()
    };

    // Made with flags that must survive: env (from the host too), a
    // volume, a restart policy, a health check, the registry flag.
    let mut c = w.cmd();
    c.env("FROM_HOST", "host-value").args([
        "run",
        "-d",
        "--name",
        "app",
        "--label",
        "io.containers.autoupdate=registry",
        "--insecure-registry",
        &reg.addr,
        "--restart",
        "always",
        "--stop-timeout",
        "1",
        "-e",
        "SET=given",
        "-e",
        "FROM_HOST",
        "-v",
        "appdata:/data",
        "--health-cmd",
        "test -f /ok",
        "--health-interval",
        "500ms",
        "--health-retries",
        "2",
        &image,
    ]);
    let out = wren_tests::run(&mut c);
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    w.ok(&["run", "-d", "--name", "plain", &image]);
    w.ok(&["exec", "app", "sh", "-c", "echo kept > /data/f"]);
    assert_eq!(id("app"), v1);

    // Nothing moved: nothing happens; unlabelled containers are not listed.
    let out = update(&[]);
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    assert!(row(&out, "app").ends_with("false"), "{}", row(&out, "app"));
    assert_eq!(row(&out, "plain"), "");

    // v2 pushed: --dry-run only says so; then the update.
    reg.push(&l, "v2", "team/app:latest");
    let out = update(&["--dry-run"]);
    assert!(row(&out, "app").contains("pending"), "{}", row(&out, "app"));
    assert_eq!(version("app"), "1\n");
    let out = update(&[]);
    assert!(out.status.success(), "{}", wren_tests::text(&out.stderr));
    assert!(row(&out, "app").contains("true"), "{}", row(&out, "app"));
    assert_eq!(id("app"), v2);
    assert_eq!(version("app"), "2\n");
    let env = w.ok(&["exec", "app", "env"]);
    for want in ["SET=given", "FROM_HOST=host-value", "FROM_IMAGE=1"] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    assert_eq!(w.ok(&["exec", "app", "cat", "/data/f"]), "kept\n");
    let v: Value = serde_json::from_str(&w.ok(&["inspect", "app"])).unwrap();
    assert_eq!(v["restart_policy"], "always", "{v}");
    assert!(wait_for(20, || {
        let v: Value = serde_json::from_str(&w.ok(&["inspect", "app"])).unwrap();
        v["health"]["status"] == "healthy"
    }));
    assert_eq!(version("plain"), "1\n");
    assert_eq!(id("plain"), v1);

    // v3 cannot run (its entrypoint exits): rolled back to v2, status 1.
    reg.push(&l, "v3", "team/app:latest");
    let out = update(&[]);
    let r = row(&out, "app");
    assert!(
        !out.status.success() && r.contains("rolled back") && r.contains("restarting"),
        "{r}"
    );
    assert_eq!(id("app"), v2);
    assert_eq!(version("app"), "2\n");

    // v4 runs but fails its health check: rolled back too; without
    // rollback it stays, and the row says why.
    reg.push(&l, "v4", "team/app:latest");
    let out = update(&[]);
    let r = row(&out, "app");
    assert!(
        !out.status.success() && r.contains("rolled back") && r.contains("unhealthy"),
        "{r}"
    );
    assert_eq!(id("app"), v2);
    let out = update(&["--rollback=false", "app"]);
    let r = row(&out, "app");
    assert!(
        !out.status.success() && r.contains("failed") && r.contains("no rollback"),
        "{r}"
    );
    assert_eq!(id("app"), v4);
    assert_eq!(w.ok(&["exec", "app", "cat", "/data/f"]), "kept\n");

    // `local`: the store's image of that name moved (here by `wren tag`).
    let one = format!("{}/team/app:one", reg.addr);
    w.ok(&["pull", "--insecure-registry", &reg.addr, &one]);
    w.ok(&["tag", &one, "loc:1"]);
    w.ok(&[
        "run",
        "-d",
        "--name",
        "loc",
        "--label",
        "io.containers.autoupdate=local",
        "--stop-timeout",
        "1",
        "loc:1",
    ]);
    // A sidecar in its network and pid namespaces (wrend keeps a joined
    // container): taken down and made again with it, into the new one's.
    w.ok(&[
        "run",
        "-d",
        "--name",
        "side",
        "--network",
        "container:loc",
        "--pid",
        "container:loc",
        "--stop-timeout",
        "1",
        "-e",
        "SIDE=1",
        "loc:1",
        "sleep",
        "1001",
    ]);
    reg.push(&l, "v2", "team/app:two");
    let two = format!("{}/team/app:two", reg.addr);
    w.ok(&["pull", "--insecure-registry", &reg.addr, &two]);
    w.ok(&["tag", &two, "loc:1"]);
    let out = update(&["loc"]);
    assert!(out.status.success(), "{}", wren_tests::text(&out.stdout));
    let r = row(&out, "loc");
    assert!(
        r.contains("true") && r.contains("made again in its namespaces: side"),
        "{r}"
    );
    assert_eq!(version("loc"), "2\n");
    let side: Value = serde_json::from_str(&w.ok(&["inspect", "side"])).unwrap();
    assert_eq!(side["status"], "running", "{side}");
    assert_eq!(side["network"], "container:loc", "{side}");
    // Its own image and flags (the name loc:1 moved: the sidecar too is
    // made from what the name means now, as any re-create is).
    assert_eq!(version("side"), "2\n");
    assert!(w
        .ok(&["exec", "side", "env"])
        .lines()
        .any(|l| l == "SIDE=1"));
    let ps = w.ok(&["exec", "side", "ps"]);
    assert!(
        ps.contains("sleep 1000") && ps.contains("sleep 1001"),
        "{ps}"
    );

    // Bad input: an unknown name; a named container without the label.
    let err = w.fails(&["auto-update", "nosuch"]);
    assert!(err.contains("no such container: nosuch"), "{err}");
    let out = update(&["plain"]);
    assert!(!out.status.success() && row(&out, "plain").contains("no io.containers.autoupdate"));
    assert_eq!(id("plain"), v1);
    let _ = v3;
    w.ok(&["rm", "-f", "side", "app", "plain", "loc"]);
}
