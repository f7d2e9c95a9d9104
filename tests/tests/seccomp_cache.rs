//! The compiled seccomp filter cache (`runtime/src/seccomp/cache.rs`): what
//! it hands out is byte-identical to a fresh compile, a changed profile never
//! meets a stale entry, damaged or foreign entries are removed and rebuilt
//! (never loaded), the size bound holds, concurrent writers leave only whole
//! entries, and `wren-oci run` of a seccomp bundle reuses the disk entry.
//!
//! Runs in the test process (the library calls) and through `wren-oci`.
//! Only the tests that chown files or run containers need root.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use wren_runtime::seccomp::cache::{
    compile_with, dir_for, CacheError, CacheKey, DiskCache, MemoryCache, Source,
};
use wren_runtime::seccomp::{compile, compile_cached, from_json, LinuxSeccomp, SeccompProgram};
use wren_tests::profiles::default_like;
use wren_tests::{require_root, Bundle, Oci};

/// Profiles with arguments, notify, listener fields and explicit flags.
fn variants() -> Vec<Value> {
    vec![
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "listenerPath": "/run/wren-test-agent.sock",
            "listenerMetadata": "pod=a",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
                         {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"}]
        }),
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": [],
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
                 "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95,
                 "args": [{"index": 1, "value": 0xf, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_GT"}]},
                {"names": ["ptrace"], "action": "SCMP_ACT_LOG"}
            ]
        }),
        json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["read", "write", "exit_group", "rt_sigreturn"],
                          "action": "SCMP_ACT_ALLOW"}]
        }),
    ]
}

fn profile(v: &Value) -> LinuxSeccomp {
    from_json(v).expect("valid profile")
}

fn key(p: &LinuxSeccomp) -> CacheKey {
    CacheKey::new(p).expect("the cache environment is readable here")
}

/// A private cache directory (and its temp parent, removed on drop).
fn private_cache(max_bytes: u64) -> (tempfile::TempDir, DiskCache) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = DiskCache::with_max_bytes(dir_for(tmp.path()), max_bytes);
    (tmp, cache)
}

/// The program bytes inside an entry file (between the 56-byte header and
/// the 32-byte checksum).
fn entry_program(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read entry");
    bytes[56..bytes.len() - 32].to_vec()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn cached_program_is_byte_identical_to_a_fresh_compile() {
    let mut all = vec![default_like()];
    all.extend(variants());
    for v in &all {
        let p = profile(v);
        let fresh = compile(&p).expect("compile");
        let (_tmp, disk) = private_cache(1 << 20);
        let memory = MemoryCache::new(4);

        let first = compile_with(&p, Some(&memory), Some(&disk)).unwrap();
        assert_eq!(first.source, Source::Compiled);
        let second = compile_with(&p, Some(&memory), Some(&disk)).unwrap();
        assert_eq!(second.source, Source::Memory);
        let third = compile_with(&p, None, Some(&disk)).unwrap();
        assert_eq!(third.source, Source::Disk);
        for got in [&first, &second, &third] {
            assert_eq!(got.program, fresh, "profile {v}");
            assert_eq!(got.program.bpf(), fresh.bpf());
            assert_eq!(got.program.flags(), fresh.flags());
            assert_eq!(got.program.uses_notify(), fresh.uses_notify());
            assert_eq!(got.program.listener_path(), fresh.listener_path());
            assert_eq!(got.program.listener_metadata(), fresh.listener_metadata());
        }
        // The stored program is the kernel's bytes of a fresh compile.
        assert_eq!(entry_program(&disk.entry_path(&key(&p))), fresh.bpf());
    }
}

#[test]
fn a_changed_profile_never_hits_a_stale_entry() {
    let base = default_like();
    let (_tmp, disk) = private_cache(1 << 20);
    let memory = MemoryCache::new(8);
    let base_fresh = compile(&profile(&base)).unwrap();
    compile_with(&profile(&base), Some(&memory), Some(&disk)).unwrap();

    let mut one_rule = base.clone();
    one_rule["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .push(json!("mkdir"));
    let mut one_arch = base.clone();
    one_arch["architectures"].as_array_mut().unwrap().pop();
    let mut errno = base.clone();
    errno["defaultErrnoRet"] = json!(38);
    let mut one_arg = base.clone();
    one_arg["syscalls"][4]["args"][0]["value"] = json!(41);
    let mut no_flags = base.clone();
    no_flags["flags"] = json!([]);

    let mut seen = HashSet::new();
    seen.insert(key(&profile(&base)));
    for changed in [one_rule, one_arch, errno, one_arg, no_flags] {
        let p = profile(&changed);
        assert!(seen.insert(key(&p)), "two profiles share a key: {changed}");
        let fresh = compile(&p).unwrap();
        assert_ne!(fresh, base_fresh, "the change must matter: {changed}");
        for memory in [Some(&memory), None] {
            let got = compile_with(&p, memory, Some(&disk)).unwrap();
            assert_eq!(got.program, fresh);
        }
        // And the base still gets its own program back.
        let got = compile_with(&profile(&base), Some(&memory), Some(&disk)).unwrap();
        assert_eq!(got.program, base_fresh);
    }
}

/// Damages the entry of `p` with `damage`, then checks it is refused and
/// removed, and that the next compile rebuilds a good one.
fn damaged_entry_is_rebuilt(
    disk: &DiskCache,
    p: &LinuxSeccomp,
    what: &str,
    damage: impl Fn(&Path),
) {
    let fresh = compile(p).unwrap();
    let k = key(p);
    let path = disk.entry_path(&k);
    compile_with(p, None, Some(disk)).unwrap();
    assert!(disk.get(&k).unwrap().is_some(), "{what}: stored");
    damage(&path);
    assert!(
        matches!(disk.get(&k), Err(CacheError::BadEntry { .. })),
        "{what}: a damaged entry must be refused"
    );
    assert!(path.symlink_metadata().is_err(), "{what}: not removed");
    // Damage again; the cached path compiles instead and rewrites it.
    compile_with(p, None, Some(disk)).unwrap();
    damage(&path);
    let got = compile_with(p, None, Some(disk)).unwrap();
    assert_eq!(got.source, Source::Compiled, "{what}: loaded a bad entry");
    assert_eq!(got.program, fresh, "{what}");
    let again = compile_with(p, None, Some(disk)).unwrap();
    assert_eq!(again.source, Source::Disk, "{what}: not rebuilt");
    assert_eq!(again.program, fresh, "{what}");
}

#[test]
fn corrupt_truncated_wrong_mode_and_foreign_entries_are_rebuilt() {
    let (_tmp, disk) = private_cache(1 << 20);
    let p = profile(&default_like());
    let other = profile(&variants()[1]);

    damaged_entry_is_rebuilt(&disk, &p, "flipped byte", |path| {
        let mut b = std::fs::read(path).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(path, b).unwrap();
    });
    damaged_entry_is_rebuilt(&disk, &p, "truncated", |path| {
        let b = std::fs::read(path).unwrap();
        std::fs::write(path, &b[..b.len() - 40]).unwrap();
    });
    damaged_entry_is_rebuilt(&disk, &p, "empty", |path| {
        std::fs::write(path, b"").unwrap();
    });
    damaged_entry_is_rebuilt(&disk, &p, "mode 0644", |path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    });
    damaged_entry_is_rebuilt(&disk, &p, "hard link", |path| {
        let link = path.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(path, link).unwrap();
    });
    // A whole, self-consistent entry written for another key.
    let other_path = disk.entry_path(&key(&other));
    compile_with(&other, None, Some(&disk)).unwrap();
    damaged_entry_is_rebuilt(&disk, &p, "foreign key", |path| {
        std::fs::copy(&other_path, path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    });
    damaged_entry_is_rebuilt(&disk, &p, "symlink", |path| {
        std::fs::remove_file(path).unwrap();
        std::os::unix::fs::symlink(&other_path, path).unwrap();
    });
}

#[test]
fn foreign_owned_entry_and_directory_are_refused() {
    if !require_root("foreign_owned_entry_and_directory_are_refused") {
        return;
    }
    let (_tmp, disk) = private_cache(1 << 20);
    let p = profile(&default_like());
    let fresh = compile(&p).unwrap();
    damaged_entry_is_rebuilt(&disk, &p, "owned by nobody", |path| {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    });

    // A directory owned by someone else is not used at all, not even to
    // write; the program still comes back, compiled.
    std::os::unix::fs::chown(disk.dir(), Some(65534), Some(65534)).unwrap();
    let got = compile_with(&p, None, Some(&disk)).unwrap();
    assert_eq!(got.source, Source::Compiled);
    assert_eq!(got.program, fresh);
    assert!(matches!(
        disk.get(&key(&p)),
        Err(CacheError::DirNotOurs { .. })
    ));
    std::os::unix::fs::chown(disk.dir(), Some(0), Some(0)).unwrap();
    assert_eq!(
        compile_with(&p, None, Some(&disk)).unwrap().source,
        Source::Disk
    );
}

#[test]
fn the_size_bound_evicts_the_oldest_entries() {
    let profiles: Vec<_> = (0..5)
        .map(|i| {
            profile(&json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + i}]
            }))
        })
        .collect();
    let (_tmp, probe) = private_cache(1 << 20);
    compile_with(&profiles[0], None, Some(&probe)).unwrap();
    let one = std::fs::metadata(probe.entry_path(&key(&profiles[0])))
        .unwrap()
        .len();

    let (_tmp, disk) = private_cache(one * 3);
    for p in &profiles {
        compile_with(p, None, Some(&disk)).unwrap();
        // Distinct mtimes, so "oldest" is well defined.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let total: u64 = entries(disk.dir())
        .iter()
        .map(|e| std::fs::metadata(e).unwrap().len())
        .sum();
    assert!(total <= disk.max_bytes(), "{total} > {}", disk.max_bytes());
    let kept: Vec<bool> = profiles
        .iter()
        .map(|p| disk.entry_path(&key(p)).exists())
        .collect();
    assert_eq!(kept, [false, false, true, true, true]);
}

#[test]
fn concurrent_writers_leave_only_whole_entries() {
    let (_tmp, disk) = private_cache(1 << 20);
    let mut values = vec![default_like()];
    values.extend(variants());
    let profiles: Arc<Vec<_>> = Arc::new(values.iter().map(profile).collect());
    let fresh: Arc<Vec<SeccompProgram>> =
        Arc::new(profiles.iter().map(|p| compile(p).unwrap()).collect());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (disk, profiles, fresh) = (disk.clone(), profiles.clone(), fresh.clone());
            std::thread::spawn(move || {
                for round in 0..12 {
                    let i = (t + round) % profiles.len();
                    let k = key(&profiles[i]);
                    // Readers between writers never see half an entry.
                    match disk.get(&k) {
                        Ok(_) => {}
                        Err(e) => panic!("thread {t}: {e}"),
                    }
                    // Write through the cache, and directly (always a rename
                    // over a possibly existing entry).
                    let got = compile_with(&profiles[i], None, Some(&disk)).unwrap();
                    assert_eq!(got.program, fresh[i]);
                    disk.put(&k, &fresh[i]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let names: Vec<String> = entries(disk.dir())
        .iter()
        .map(|e| e.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        profiles.len(),
        "only entries, no temp files: {names:?}"
    );
    for (p, f) in profiles.iter().zip(fresh.iter()) {
        let got = disk.get(&key(p)).unwrap().expect("entry");
        assert_eq!(got.bpf(), f.bpf());
    }
}

#[test]
fn the_memory_cache_returns_the_same_program() {
    let p = profile(&default_like());
    let fresh = compile(&p).unwrap();
    let memory = MemoryCache::new(2);
    assert_eq!(
        compile_with(&p, Some(&memory), None).unwrap().source,
        Source::Compiled
    );
    for _ in 0..3 {
        let got = compile_with(&p, Some(&memory), None).unwrap();
        assert_eq!(got.source, Source::Memory);
        assert_eq!(got.program, fresh);
    }
    assert_eq!(memory.len(), 1);
    // The process-wide cache behind compile_cached, without a directory.
    for _ in 0..2 {
        assert_eq!(compile_cached(&p, None).unwrap(), fresh);
    }
}

#[test]
fn wren_oci_run_twice_reuses_the_disk_entry() {
    if !require_root("wren_oci_run_twice_reuses_the_disk_entry") {
        return;
    }
    let oci = Oci::new("scache");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; mkdir /tmp/x 2>/dev/null || echo mkdir-denied",
    ]);
    b.config["linux"]["seccomp"] = default_like();
    b.save();
    let cache = dir_for(oci.root.path());

    let (code, out, err) = oci.run_bundle(&b, &oci.id("one"), &[]);
    assert_eq!(code, 0, "first run: {err}");
    assert_eq!(out, "Seccomp:\t2\nmkdir-denied\n", "first run: {err}");
    let meta = std::fs::metadata(&cache).expect("cache directory made");
    assert_eq!(meta.mode() & 0o7777, 0o700);
    let made = entries(&cache);
    assert_eq!(made.len(), 1, "one entry: {made:?}");
    let entry = &made[0];
    let before = std::fs::metadata(entry).unwrap();
    assert_eq!(before.mode() & 0o7777, 0o600);
    let bytes = std::fs::read(entry).unwrap();
    // What wren-oci stored is what a fresh compile gives.
    let fresh = compile(&profile(&default_like())).unwrap();
    assert_eq!(entry_program(entry), fresh.bpf());

    let (code, out, err) = oci.run_bundle(&b, &oci.id("two"), &[]);
    assert_eq!(code, 0, "second run: {err}");
    assert_eq!(out, "Seccomp:\t2\nmkdir-denied\n", "second run: {err}");
    // A hit reads the entry; a miss would have renamed a new file over it.
    assert_eq!(entries(&cache), made);
    let after = std::fs::metadata(entry).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "the entry was rewritten: the second run missed the cache"
    );
    assert_eq!(std::fs::read(entry).unwrap(), bytes);
}
