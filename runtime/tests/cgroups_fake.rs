//! The cgroup manager against fake cgroupfs trees in a temp dir, for what the
//! kernel of the build machines cannot show: v2 controller files (memory.max,
//! cpu.max, io.max, ...), v1 controllers that are not mounted here (hugetlb,
//! net_cls, net_prio, rdma), and runc's value conversions. The exact file
//! contents are checked. No root needed.
//!
//! A fake tree is made of plain files, so each write replaces the file: where
//! the kernel would keep several lines (io.max), one line is checked.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use wren_runtime::cgroups::{Cgroup, CgroupError, CgroupRoot, FreezerState, Layout};

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

fn touch(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (f, content) in files {
        std::fs::write(dir.join(f), content).unwrap();
    }
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

const V2_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma";

const V2_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.freeze",
    "cgroup.kill",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.high",
    "memory.swap.max",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "hugetlb.1GB.max",
    "rdma.max",
];

/// A fake pure-v2 host: `<tmp>/cg` is the cgroup2 mount, with the container
/// cgroup `/wren/c1` already populated with empty control files.
struct FakeV2 {
    _tmp: tempfile::TempDir,
    root: CgroupRoot,
    dir: PathBuf,
}

fn fake_v2() -> FakeV2 {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("cg");
    let mi = tmp.path().join("mountinfo");
    std::fs::write(
        &mi,
        format!(
            "30 23 0:26 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            mount.display()
        ),
    )
    .unwrap();
    let ctl = [
        ("cgroup.controllers", V2_CONTROLLERS),
        ("cgroup.subtree_control", ""),
    ];
    touch(&mount, &ctl);
    touch(&mount.join("wren"), &ctl);
    let dir = mount.join("wren/c1");
    touch(&dir, &ctl);
    for f in V2_FILES {
        touch(&dir, &[(f, "")]);
    }
    touch(&dir, &[("cgroup.events", "populated 0\nfrozen 0\n")]);
    let root = CgroupRoot::new(&mount, &mi).expect("detect fake v2");
    FakeV2 {
        _tmp: tmp,
        root,
        dir,
    }
}

#[test]
fn v2_layout_is_detected_with_its_controllers() {
    let f = fake_v2();
    let Layout::V2 { controllers, .. } = f.root.layout() else {
        panic!("not v2: {:?}", f.root.layout());
    };
    assert!(controllers.contains("memory") && controllers.contains("io"));
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    assert_eq!(cg.unified_dir().unwrap(), f.dir);
    cg.create().unwrap();
    // The parent delegated controllers to its children.
    assert!(read(f.dir.parent().unwrap(), "cgroup.subtree_control").starts_with('+'));
}

#[test]
fn v2_files_get_runc_values() {
    let f = fake_v2();
    let cg = Cgroup::new(&f.root, Some("c1"), "ignored").unwrap();
    cg.create().unwrap();
    cg.apply(&res(r#"{
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000,
                "idle": 1, "cpus": "0-1", "mems": "0"},
        "memory": {"limit": 1073741824, "swap": 2147483648, "reservation": 536870912},
        "pids": {"limit": 42},
        "blockIO": {"weight": 500,
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}},
        "unified": {"memory.high": "900000000"}
    }"#))
        .expect("apply");
    let d = &f.dir;
    assert_eq!(read(d, "cpu.weight"), "100", "shares 1024 -> weight 100");
    assert_eq!(read(d, "cpu.max"), "50000 100000");
    assert_eq!(read(d, "cpu.max.burst"), "10000");
    assert_eq!(read(d, "cpu.idle"), "1");
    assert_eq!(read(d, "cpuset.cpus"), "0-1");
    assert_eq!(read(d, "cpuset.mems"), "0");
    assert_eq!(read(d, "memory.max"), "1073741824");
    // OCI swap is memory+swap; v2 swap.max is swap alone.
    assert_eq!(read(d, "memory.swap.max"), "1073741824");
    assert_eq!(read(d, "memory.low"), "536870912");
    assert_eq!(read(d, "memory.high"), "900000000");
    assert_eq!(read(d, "pids.max"), "42");
    assert_eq!(read(d, "io.weight"), "4950", "blkio 500 -> io.weight");
    assert_eq!(read(d, "io.max"), "8:0 rbps=1048576");
    assert_eq!(read(d, "hugetlb.2MB.max"), "4194304");
    assert_eq!(read(d, "rdma.max"), "mlx5_0 hca_handle=3 hca_object=100");
}

#[test]
fn v2_unlimited_and_swap_semantics() {
    let f = fake_v2();
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    cg.apply(&res(
        r#"{"memory":{"limit":-1},"pids":{"limit":0},"cpu":{"quota":-1}}"#,
    ))
    .unwrap();
    assert_eq!(read(&f.dir, "memory.max"), "max");
    assert_eq!(read(&f.dir, "memory.swap.max"), "max");
    assert_eq!(read(&f.dir, "pids.max"), "max");
    assert_eq!(read(&f.dir, "cpu.max"), "max");
    // swap == limit: no swap at all.
    cg.apply(&res(r#"{"memory":{"limit":1000000,"swap":1000000}}"#))
        .unwrap();
    assert_eq!(read(&f.dir, "memory.swap.max"), "0");
    // A period alone keeps the quota.
    std::fs::write(f.dir.join("cpu.max"), "30000 100000\n").unwrap();
    cg.update(&res(r#"{"cpu":{"period":50000}}"#)).unwrap();
    assert_eq!(read(&f.dir, "cpu.max"), "30000 50000");
    // Swap below memory is refused, naming the field.
    let e = cg
        .apply(&res(r#"{"memory":{"limit":2000000,"swap":1000000}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("memory.swap"), "{e}");
}

#[test]
fn v2_unknown_unified_key_fails_and_leaves_nothing_half_applied() {
    let f = fake_v2();
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    // Unknown controller: refused by validation.
    let e = cg
        .apply(&res(r#"{"pids":{"limit":5},"unified":{"foo.bar":"1"}}"#))
        .unwrap_err();
    assert!(
        matches!(e, CgroupError::Invalid { ref field, .. } if field == "unified[\"foo.bar\"]"),
        "{e}"
    );
    // Known controller but no such file: refused before the first write.
    let e = cg
        .apply(&res(
            r#"{"pids":{"limit":5},"memory":{"limit":1000000},"unified":{"memory.nonexistent":"1"}}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("memory.nonexistent"), "{e}");
    assert_eq!(
        read(&f.dir, "pids.max"),
        "",
        "pids.max written before the error"
    );
    assert_eq!(
        read(&f.dir, "memory.max"),
        "",
        "memory.max written before the error"
    );
    // Other bad input names the field and writes nothing.
    for (json, field) in [
        (r#"{"pids":{"limit":5},"cpu":{"quota":-5}}"#, "cpu.quota"),
        (
            r#"{"pids":{"limit":5},"devices":[{"allow":true,"type":"p"}]}"#,
            "devices[0].type",
        ),
        (
            r#"{"pids":{"limit":5},"cpu":{"realtimeRuntime":5}}"#,
            "cpu.realtimeRuntime",
        ),
    ] {
        let e = cg.apply(&res(json)).unwrap_err();
        assert!(e.to_string().contains(field), "{json}: {e}");
    }
    assert_eq!(read(&f.dir, "pids.max"), "");
}

#[test]
fn v2_missing_controller_is_an_error() {
    let f = fake_v2();
    std::fs::write(f.dir.join("cgroup.controllers"), "cpu pids").unwrap();
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    let e = cg
        .apply(&res(r#"{"memory":{"limit":1000000}}"#))
        .unwrap_err();
    assert!(
        matches!(e, CgroupError::ControllerMissing { ref controller, .. } if controller == "memory"),
        "{e}"
    );
}

#[test]
fn v2_stats_parse_every_file() {
    let f = fake_v2();
    touch(
        &f.dir,
        &[
            (
                "cpu.stat",
                "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300\n",
            ),
            ("memory.current", "4096\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "8192\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "0\n"),
            ("memory.stat", "anon 1024\nfile 2048\npgfault 7\n"),
            ("memory.events", "low 0\nhigh 1\nmax 2\noom 3\noom_kill 1\n"),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.events", "max 5\n"),
            ("cpu.pressure", "some avg10=0.50 avg60=0.00 avg300=0.00 total=99\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
        ],
    );
    let _ = std::fs::remove_file(f.dir.join("hugetlb.1GB.max"));
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.version, wren_runtime::cgroups::stats::StatsVersion::V2);
    assert_eq!(s.cpu.usage_total_ns, 2_000_000);
    assert_eq!(s.cpu.usage_user_ns, 1_500_000);
    assert_eq!(s.cpu.nr_throttled, 4);
    assert_eq!(s.cpu.throttled_time_ns, 300_000);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.max_usage, 8192);
    assert_eq!(s.memory.stat.get("file"), Some(&2048));
    assert_eq!(s.memory.oom.oom_kill, 1);
    assert_eq!(s.memory.oom.oom, 3);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.io.usage.len(), 1);
    assert_eq!(s.io.usage[0].wbytes, 20);
    assert_eq!(s.hugetlb.len(), 1);
    assert_eq!(s.hugetlb[0].pagesize, "2MB");
    assert_eq!(s.hugetlb[0].failcnt, 5);
    assert_eq!(s.pressure.unwrap().cpu.some.avg10, 50);
}

#[test]
fn v2_oom_watcher_counts_memory_events() {
    let f = fake_v2();
    touch(
        &f.dir,
        &[("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")],
    );
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    let mut w = cg.oom_watcher().unwrap();
    assert_eq!(w.new_kills().unwrap(), 0);
    std::fs::write(
        f.dir.join("memory.events"),
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n",
    )
    .unwrap();
    let mut fds = [nix::poll::PollFd::new(
        w.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    assert_eq!(
        nix::poll::poll(&mut fds, 1000u16).unwrap(),
        1,
        "inotify fired"
    );
    assert_eq!(w.new_kills().unwrap(), 2);
    assert_eq!(w.new_kills().unwrap(), 0);
    // The cgroup is gone: nothing new, no error.
    std::fs::remove_file(f.dir.join("memory.events")).unwrap();
    assert_eq!(w.new_kills().unwrap(), 0);
}

#[test]
fn v2_freezer_state_reports_pausing() {
    let f = fake_v2();
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    std::fs::write(f.dir.join("cgroup.freeze"), "0\n").unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    std::fs::write(f.dir.join("cgroup.freeze"), "1\n").unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Freezing);
    assert_eq!(cg.freezer_state().unwrap().status(), "pausing");
    std::fs::write(f.dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
}

/// A fake v1 host with every controller wren knows mounted separately under
/// `<tmp>/v1/<name>`, and the container cgroup `/wren/c1` in each.
struct FakeV1 {
    _tmp: tempfile::TempDir,
    root: CgroupRoot,
    dirs: BTreeMap<&'static str, PathBuf>,
}

fn fake_v1(with_unified: bool) -> FakeV1 {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("v1");
    let mut mi = String::new();
    let files: &[(&str, &[&str])] = &[
        (
            "cpu",
            &[
                "cpu.shares",
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "cpu.cfs_burst_us",
                "cpu.rt_period_us",
                "cpu.rt_runtime_us",
                "cpu.idle",
            ],
        ),
        ("cpuacct", &[]),
        ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
        (
            "memory",
            &[
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.soft_limit_in_bytes",
                "memory.swappiness",
                "memory.oom_control",
            ],
        ),
        ("devices", &["devices.allow", "devices.deny"]),
        ("freezer", &["freezer.state"]),
        (
            "blkio",
            &[
                "blkio.bfq.weight",
                "blkio.bfq.weight_device",
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_iops_device",
            ],
        ),
        ("pids", &["pids.max"]),
        ("hugetlb", &["hugetlb.2MB.limit_in_bytes"]),
        ("net_cls", &["net_cls.classid"]),
        ("net_prio", &["net_prio.ifpriomap"]),
        ("rdma", &["rdma.max"]),
    ];
    let mut dirs = BTreeMap::new();
    for (i, (name, fs)) in files.iter().enumerate() {
        let mnt = base.join(name);
        mi.push_str(&format!(
            "{} 31 0:{} / {} rw - cgroup cgroup rw,{name}\n",
            40 + i,
            50 + i,
            mnt.display()
        ));
        touch(&mnt, &[("cgroup.procs", "")]);
        let d = mnt.join("wren/c1");
        touch(&d, &[("cgroup.procs", "")]);
        for f in fs.iter() {
            touch(&d, &[(f, "")]);
        }
        dirs.insert(*name, d);
    }
    // The v1 cpuset root has cpus and mems; the new child is empty.
    touch(
        &base.join("cpuset"),
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
    touch(
        &base.join("cpuset/wren"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    touch(
        &dirs["memory"],
        &[("memory.limit_in_bytes", "9223372036854771712\n")],
    );
    if with_unified {
        let u = base.join("unified");
        mi.push_str(&format!(
            "99 31 0:99 / {} rw - cgroup2 cgroup2 rw\n",
            u.display()
        ));
        touch(&u, &[("cgroup.controllers", "hugetlb")]);
        let d = u.join("wren/c1");
        touch(&d, &[("cgroup.procs", ""), ("hugetlb.2MB.max", "")]);
    }
    let mip = tmp.path().join("mountinfo");
    std::fs::write(&mip, mi).unwrap();
    let root = CgroupRoot::new(&base, &mip).expect("detect fake v1");
    FakeV1 {
        _tmp: tmp,
        root,
        dirs,
    }
}

#[test]
fn v1_controllers_get_their_files() {
    let f = fake_v1(false);
    assert!(matches!(f.root.layout(), Layout::V1 { .. }));
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    cg.create().unwrap();
    // cpuset was populated from the parent chain.
    assert_eq!(read(&f.dirs["cpuset"], "cpuset.cpus"), "0-3");
    assert_eq!(read(&f.dirs["cpuset"], "cpuset.mems"), "0");
    cg.apply(&res(r#"{
        "cpu": {"shares": 512, "quota": 20000, "period": 50000, "realtimePeriod": 1000000,
                "realtimeRuntime": 950000, "cpus": "1"},
        "memory": {"limit": 104857600, "swap": 209715200, "reservation": 52428800,
                   "swappiness": 10, "disableOOMKiller": true},
        "pids": {"limit": 64},
        "blockIO": {"weight": 300,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 50}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx4_0": {"hcaHandles": 2}},
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    }"#))
        .expect("apply v1");
    let d = |c: &str| f.dirs[c].clone();
    assert_eq!(read(&d("cpu"), "cpu.shares"), "512");
    assert_eq!(read(&d("cpu"), "cpu.cfs_period_us"), "50000");
    assert_eq!(read(&d("cpu"), "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&d("cpu"), "cpu.rt_period_us"), "1000000");
    assert_eq!(read(&d("cpu"), "cpu.rt_runtime_us"), "950000");
    assert_eq!(read(&d("cpuset"), "cpuset.cpus"), "1");
    assert_eq!(read(&d("memory"), "memory.limit_in_bytes"), "104857600");
    // v1 keeps OCI's memory+swap meaning.
    assert_eq!(
        read(&d("memory"), "memory.memsw.limit_in_bytes"),
        "209715200"
    );
    assert_eq!(read(&d("memory"), "memory.soft_limit_in_bytes"), "52428800");
    assert_eq!(read(&d("memory"), "memory.swappiness"), "10");
    assert_eq!(read(&d("memory"), "memory.oom_control"), "1");
    assert_eq!(read(&d("pids"), "pids.max"), "64");
    // No CFQ blkio.weight: BFQ's file, same 10..1000 scale.
    assert_eq!(read(&d("blkio"), "blkio.bfq.weight"), "300");
    assert_eq!(read(&d("blkio"), "blkio.bfq.weight_device"), "8:0 200");
    assert_eq!(
        read(&d("blkio"), "blkio.throttle.read_bps_device"),
        "8:0 1000"
    );
    assert_eq!(
        read(&d("blkio"), "blkio.throttle.write_iops_device"),
        "8:16 50"
    );
    assert_eq!(read(&d("hugetlb"), "hugetlb.2MB.limit_in_bytes"), "2097152");
    assert_eq!(read(&d("net_cls"), "net_cls.classid"), "1048577");
    assert_eq!(read(&d("net_prio"), "net_prio.ifpriomap"), "eth0 5");
    assert_eq!(read(&d("rdma"), "rdma.max"), "mlx4_0 hca_handle=2");
    // First apply on a cgroup with no devices.list: reset, then the allow.
    assert_eq!(read(&d("devices"), "devices.deny"), "a");
    assert_eq!(read(&d("devices"), "devices.allow"), "c 1:3 rwm");
}

#[test]
fn v1_refuses_unified_and_missing_controllers() {
    let f = fake_v1(false);
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    let e = cg
        .apply(&res(r#"{"unified":{"memory.max":"1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("unified"), "{e}");
    assert!(cg
        .apply(&res(r#"{"hugepageLimits":[{"pageSize":"1GB","limit":1}]}"#))
        .is_err());
}

#[test]
fn hybrid_joins_unified_and_accepts_its_controllers() {
    let f = fake_v1(true);
    assert!(matches!(f.root.layout(), Layout::Hybrid { .. }));
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    assert_eq!(cg.dirs().len(), 13, "12 v1 hierarchies + unified");
    cg.apply(&res(r#"{"unified":{"hugetlb.2MB.max":"4096"}}"#))
        .unwrap();
    let u = cg.unified_dir().unwrap();
    assert_eq!(read(&u, "hugetlb.2MB.max"), "4096");
    let e = cg
        .apply(&res(r#"{"unified":{"memory.max":"1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("memory.max"), "{e}");
}

#[test]
fn v1_stats_parse_every_file() {
    let f = fake_v1(false);
    touch(
        &f.dirs["cpuacct"],
        &[
            ("cpuacct.usage", "3000\n"),
            ("cpuacct.usage_percpu", "1000 2000\n"),
            ("cpuacct.stat", "user 3\nsystem 1\n"),
        ],
    );
    touch(
        &f.dirs["cpu"],
        &[(
            "cpu.stat",
            "nr_periods 5\nnr_throttled 2\nthrottled_time 777\n",
        )],
    );
    touch(
        &f.dirs["memory"],
        &[
            ("memory.usage_in_bytes", "100\n"),
            ("memory.max_usage_in_bytes", "200\n"),
            ("memory.failcnt", "1\n"),
            ("memory.stat", "cache 10\nrss 20\ntotal_rss 20\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    touch(
        &f.dirs["pids"],
        &[("pids.current", "2\n"), ("pids.max", "10\n")],
    );
    touch(
        &f.dirs["blkio"],
        &[(
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 10\n8:0 Write 5\nTotal 15\n",
        )],
    );
    let cg = Cgroup::new(&f.root, None, "c1").unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.cpu.usage_total_ns, 3000);
    assert_eq!(s.cpu.per_cpu_ns, vec![1000, 2000]);
    assert_eq!(s.cpu.usage_user_ns, 30_000_000, "3 ticks of 10 ms");
    assert_eq!(s.cpu.nr_throttled, 2);
    assert_eq!(s.cpu.throttled_time_ns, 777);
    assert_eq!(s.memory.usage.usage, 100);
    assert_eq!(s.memory.usage.max_usage, 200);
    assert_eq!(s.memory.usage.limit, 9223372036854771712);
    assert_eq!(s.memory.stat["rss"], 20);
    assert_eq!(s.memory.oom.oom_kill, 3);
    assert_eq!(s.pids.current, 2);
    assert_eq!(s.pids.limit, 10);
    assert_eq!(s.io.io_service_bytes_recursive.len(), 2);
}

#[test]
fn cgroups_path_forms() {
    let f = fake_v2();
    let mount = f.dir.parent().unwrap().parent().unwrap().to_path_buf();
    let cg = Cgroup::new(
        &f.root,
        Some("kubepods-besteffort.slice:cri-containerd:abc"),
        "x",
    )
    .unwrap();
    assert_eq!(
        cg.unified_dir().unwrap(),
        mount.join("kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope")
    );
    let cg = Cgroup::new(&f.root.clone().with_default_parent("other"), None, "x").unwrap();
    assert_eq!(cg.path(), "/other/x");
    assert!(matches!(
        Cgroup::new(&f.root, Some("../../etc"), "x"),
        Err(CgroupError::InvalidPath { .. })
    ));
}
