//! Root integration test of the opt-in timing marks (`WREN_TIMING`,
//! runtime/src/timing.rs) through `wren-oci run`: every phase of a start is
//! marked in causal order, the init's marks come from the container's pid 1,
//! the timing file never reaches the container process, and nothing is
//! written when the variable is unset.

use std::collections::HashMap;

use serde_json::Value;
use wren_tests::{assert_gone, require_root, Bundle, Oci};

const ORDER: &[&str] = &[
    "runtime.create",
    "runtime.spawn",
    "init.stage1",
    "init.config",
    "init.cgroups",
    "init.namespaces",
    "init.stage2",
    "init.mounts",
    "init.hooks",
    "init.pivot",
    "init.paths",
    "init.ready",
    "runtime.created",
    "runtime.start",
    "init.released",
    "init.execve",
    "runtime.delete",
    "runtime.deleted",
];

#[test]
fn timing_marks_cover_a_start_in_order_and_never_reach_the_container() {
    if !require_root("timing_marks_cover_a_start_in_order_and_never_reach_the_container") {
        return;
    }
    let oci = Oci::new("timing");
    // The shell lists where each of its fds points: a leaked timing file
    // would show up here.
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "for f in /proc/$$/fd/*; do readlink $f; done; true",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let marks = dir.path().join("wren-timing-marks.jsonl");
    let id = oci.id("c");
    let out = wren_tests::run(oci.cmd().env("WREN_TIMING", &marks).args([
        "run",
        "--bundle",
        b.path_str(),
        &id,
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wren-oci run: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("wren-timing-marks"),
        "the container holds the timing file: {stdout}"
    );
    assert_gone(&oci, &id);

    let text = std::fs::read_to_string(&marks).expect("the timing file was written");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let mut at: HashMap<String, u64> = HashMap::new();
    for l in &lines {
        assert_eq!(l["id"], id.as_str(), "{l}");
        let ev = l["ev"].as_str().expect("ev").to_string();
        if ev.starts_with("init.") {
            assert_eq!(
                l["pid"], 1,
                "init marks come from the container's pid 1: {l}"
            );
        }
        assert!(
            at.insert(ev, l["t"].as_u64().expect("t")).is_none(),
            "one mark per event: {text}"
        );
    }
    for pair in ORDER.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (ta, tb) = (at.get(a), at.get(b));
        assert!(ta.is_some() && tb.is_some(), "missing {a} or {b} in {text}");
        assert!(ta <= tb, "{a} after {b}: {text}");
    }

    // Unset, nothing is written.
    let before = std::fs::metadata(&marks).expect("marks").len();
    let id2 = oci.id("off");
    let out = wren_tests::run(oci.cmd().env_remove("WREN_TIMING").args([
        "run",
        "--bundle",
        b.path_str(),
        &id2,
    ]));
    assert!(out.status.success());
    assert_eq!(std::fs::metadata(&marks).expect("marks").len(), before);
    assert_gone(&oci, &id2);
}
