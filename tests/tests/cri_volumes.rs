//! Volumes and the kubelet's per-container files through CRI: bind mounts
//! with each propagation mode, the files the kubelet mounts (/etc/hosts,
//! /etc/resolv.conf, /dev/termination-log), memory-backed emptyDirs,
//! masked and read-only /proc paths as the pod spec lists them, host IPC,
//! SupplementalGroupsPolicy Strict, image volumes and PodSandboxStats.
//!
//! Root only; each test starts its own containerd (CRI on) per version of
//! the matrix and removes what it made, mounts included.

use k8s_cri::v1::{
    ImageSpec, LinuxContainerConfig, Mount, MountPropagation, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxStatsRequest,
};
use wren_tests::cri::{for_each_cri, secctx, Cri};
use wren_tests::tree;

/// `sh -ec script` in containerd's mount namespace; panics with its
/// output when it fails.
fn sh_ok(cri: &Cri, script: &str) -> String {
    let out = cri.containerd.sh(script);
    assert!(
        out.status.success(),
        "{script}: {}{}",
        wren_tests::text(&out.stdout),
        wren_tests::text(&out.stderr)
    );
    wren_tests::text(&out.stdout)
}

/// Unmounts everything at and below `dir` (in containerd's mount
/// namespace) when dropped, so a failing test leaves no mount behind on
/// the host's containerd 1.6, which shares the host's mount namespace.
struct Unmount<'a> {
    cri: &'a Cri,
    dir: String,
}

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.cri.containerd.sh(&format!(
            "while grep -q \" {0}\\(/\\| \\)\" /proc/self/mountinfo; do umount -l -R {0} || break; done",
            self.dir
        ));
    }
}

/// A pod config whose pod may run privileged containers.
fn privileged_pod(cri: &Cri, name: &str) -> PodSandboxConfig {
    let mut podcfg = cri.pod_config(name);
    podcfg
        .linux
        .as_mut()
        .expect("linux pod config")
        .security_context
        .get_or_insert_with(Default::default)
        .privileged = true;
    podcfg
}

#[test]
fn bind_mounts_propagate_as_private_host_to_container_and_bidirectional_ask() {
    let test = "bind_mounts_propagate_as_private_host_to_container_and_bidirectional_ask";
    for_each_cri(test, "prop", |cri| {
        let vol = cri.containerd.dir.path().join("prop");
        std::fs::create_dir_all(&vol).expect("mkdir prop");
        let v = cri.containerd.inner_path(&vol).display().to_string();
        // The kubelet's volumes live on a shared mount (containerd refuses
        // Bidirectional otherwise): make the volume one.
        let _guard = Unmount {
            cri,
            dir: v.clone(),
        };
        sh_ok(
            cri,
            &format!("mount --bind {v} {v}; mount --make-shared {v}"),
        );

        let podcfg = privileged_pod(cri, "prop");
        let pod = cri.run_pod(&podcfg).expect("RunPodSandbox");
        let start = |name: &str, propagation: MountPropagation, privileged: bool| {
            let mut c = cri.container_config(name, &["sleep", "1000"]);
            c.mounts = vec![Mount {
                container_path: "/v".into(),
                host_path: v.clone(),
                propagation: propagation as i32,
                ..Default::default()
            }];
            c.linux = Some(secctx(|s| s.privileged = privileged));
            let id = cri.create_container(&pod, &podcfg, c).unwrap_or_else(|e| {
                panic!("CreateContainer {name}: {e}\n{}", cri.containerd.log())
            });
            cri.start_container(&id)
                .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
            id
        };
        let private = start("private", MountPropagation::PropagationPrivate, false);
        let slave = start("h2c", MountPropagation::PropagationHostToContainer, false);
        let shared = start("bidi", MountPropagation::PropagationBidirectional, true);
        let run = |id: &str, cmd: &str| {
            let (code, out, err) = cri.exec_sync(id, &["sh", "-c", cmd], 10).expect("ExecSync");
            (code, out.trim().to_string(), err)
        };

        // A mount made on the host after the containers started.
        sh_ok(
            cri,
            &format!("mkdir -p {v}/fromhost; mount -t tmpfs -o size=1m hostfs {v}/fromhost; echo host > {v}/fromhost/mark"),
        );
        assert_eq!(
            run(&slave, "cat /v/fromhost/mark").1,
            "host",
            "HostToContainer sees the host's new mount"
        );
        assert_eq!(
            run(&shared, "cat /v/fromhost/mark").1,
            "host",
            "Bidirectional sees the host's new mount"
        );
        let (code, _, _) = run(&private, "cat /v/fromhost/mark");
        assert_ne!(
            code, 0,
            "a Private mount must not receive the host's new mount"
        );

        // A mount made in the Bidirectional container reaches the host and
        // the HostToContainer container, not the Private one.
        let (code, _, err) = run(
            &shared,
            "mkdir -p /v/fromctr && mount -t tmpfs -o size=1m ctrfs /v/fromctr && echo ctr > /v/fromctr/mark",
        );
        assert_eq!(code, 0, "mount in the Bidirectional container: {err}");
        assert_eq!(sh_ok(cri, &format!("cat {v}/fromctr/mark")).trim(), "ctr");
        assert_eq!(run(&slave, "cat /v/fromctr/mark").1, "ctr");
        assert_ne!(run(&private, "cat /v/fromctr/mark").0, 0);

        cri.teardown(&pod);
    });
}

#[test]
fn the_kubelets_files_empty_dirs_masked_paths_and_host_ipc() {
    let test = "the_kubelets_files_empty_dirs_masked_paths_and_host_ipc";
    for_each_cri(test, "kfiles", |cri| {
        // What the kubelet prepares per pod and container on the host.
        let d = cri.containerd.dir.path().join("kubelet-pod");
        std::fs::create_dir_all(d.join("containers")).expect("mkdir");
        std::fs::create_dir_all(d.join("empty-disk")).expect("mkdir");
        std::fs::create_dir_all(d.join("empty-mem")).expect("mkdir");
        std::fs::write(
            d.join("etc-hosts"),
            "127.0.0.1\tlocalhost\n10.1.2.3\tkfiles\n",
        )
        .unwrap();
        std::fs::write(
            d.join("resolv.conf"),
            "nameserver 10.96.0.10\nsearch wren-test.svc.cluster.local\noptions ndots:5\n",
        )
        .unwrap();
        std::fs::write(d.join("containers/termination-log"), "").unwrap();
        let inner = |rel: &str| {
            cri.containerd
                .inner_path(&d.join(rel))
                .display()
                .to_string()
        };
        let mem = inner("empty-mem");
        let _guard = Unmount {
            cri,
            dir: mem.clone(),
        };
        sh_ok(cri, &format!("mount -t tmpfs -o size=4m tmpfs {mem}"));

        let mut podcfg = cri.pod_config("kfiles");
        podcfg
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options = Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ipc: NamespaceMode::Node as i32,
            ..Default::default()
        });
        let pod = cri.run_pod(&podcfg).expect("RunPodSandbox");
        let mut c = cri.container_config(
            "app",
            &[
                "sh",
                "-c",
                "echo 'the reason' > /dev/termination-log; sleep 1000",
            ],
        );
        let bind = |container: &str, host: String| Mount {
            container_path: container.into(),
            host_path: host,
            ..Default::default()
        };
        c.mounts = vec![
            bind("/etc/hosts", inner("etc-hosts")),
            bind("/etc/resolv.conf", inner("resolv.conf")),
            bind("/dev/termination-log", inner("containers/termination-log")),
            bind("/cache", inner("empty-disk")),
            bind("/scratch", mem.clone()),
        ];
        // The lists the kubelet sends replace the runtime's defaults:
        // /proc/keys, masked by default, is not masked here.
        let linux = secctx(|s| {
            s.masked_paths = vec!["/proc/cpuinfo".into(), "/proc/wren-no-such-file".into()];
            s.readonly_paths = vec!["/proc/bus".into()];
            s.namespace_options = Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                pid: NamespaceMode::Container as i32,
                ipc: NamespaceMode::Node as i32,
                ..Default::default()
            });
        });
        c.linux = Some(linux);
        let app = cri
            .create_container(&pod, &podcfg, c)
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.containerd.log()));
        cri.start_container(&app).expect("StartContainer");
        let run = |cmd: &str| {
            let (code, out, err) = cri
                .exec_sync(&app, &["sh", "-c", cmd], 10)
                .expect("ExecSync");
            assert_eq!(code, 0, "{cmd}: {err}");
            out
        };
        assert!(run("cat /etc/hosts").contains("10.1.2.3\tkfiles"));
        assert!(run("cat /etc/resolv.conf").contains("nameserver 10.96.0.10"));
        run("echo disk > /cache/x; echo mem > /scratch/y");
        assert_eq!(
            std::fs::read_to_string(d.join("empty-disk/x")).unwrap(),
            "disk\n"
        );
        assert_eq!(sh_ok(cri, &format!("cat {mem}/y")), "mem\n");
        assert!(
            run("grep ' /scratch ' /proc/self/mountinfo").contains(" - tmpfs "),
            "a memory-backed emptyDir is the host's tmpfs"
        );
        assert_eq!(
            run("wc -c < /proc/cpuinfo").trim(),
            "0",
            "/proc/cpuinfo masked"
        );
        assert_eq!(
            run("[ -c /proc/keys ] && echo masked || echo open"),
            "open\n"
        );
        let bus = run("grep ' /proc/bus ' /proc/self/mountinfo");
        assert!(
            bus.split(' ')
                .nth(5)
                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            "{bus}"
        );
        // Host IPC: the container's ipc namespace is containerd's.
        let pid = cri.containerd.pid().expect("containerd pid");
        let host_ipc = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
        assert_eq!(
            run("readlink /proc/self/ns/ipc").trim(),
            host_ipc.to_string_lossy()
        );

        // The termination message the kubelet reads after the exit.
        assert_eq!(
            std::fs::read_to_string(d.join("containers/termination-log")).unwrap(),
            "the reason\n"
        );
        cri.teardown(&pod);
    });
}

#[test]
fn strict_supplemental_groups_ignore_the_images_group_file() {
    let test = "strict_supplemental_groups_ignore_the_images_group_file";
    for_each_cri(test, "sgp", |cri| {
        let major = cri
            .containerd
            .tree
            .as_deref()
            .map_or(1, tree::containerd_major);
        // An image whose /etc/group puts user 1000 in group 4000.
        let d = cri.containerd.dir.path();
        let rootfs = d.join("image-rootfs");
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:4000:app\n",
        )
        .unwrap();
        let image = "docker.io/library/wren-groups:test";
        let tar = wren_tests::containerd::image_tar(
            d,
            &rootfs,
            image,
            serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}),
        );
        let tar = cri.containerd.inner_path(&tar);
        let out = cri
            .containerd
            .ctr(&["images", "import", tar.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "import: {}",
            wren_tests::text(&out.stderr)
        );

        let podcfg = cri.pod_config("sgp");
        let pod = cri.run_pod(&podcfg).expect("RunPodSandbox");
        let groups_of = |name: &str, policy: i32| {
            let mut c = cri.container_config(name, &["sleep", "1000"]);
            c.image = Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            });
            c.linux = Some(secctx(|s| {
                s.run_as_user = Some(k8s_cri::v1::Int64Value { value: 1000 });
                s.supplemental_groups = vec![2000];
                s.supplemental_groups_policy = policy;
            }));
            let id = cri.create_container(&pod, &podcfg, c)?;
            cri.start_container(&id)?;
            let (_, out, _) = cri.exec_sync(&id, &["id", "-G"], 10)?;
            let user = cri.container_status(&id)?.user;
            Ok::<_, tonic::Status>((out, user))
        };
        let (merged, _) = groups_of("merge", 0).expect("Merge");
        let merged: Vec<&str> = merged.split_whitespace().collect();
        assert!(
            merged.contains(&"4000") && merged.contains(&"2000"),
            "Merge: {merged:?}"
        );
        match groups_of("strict", 1) {
            // containerd before 2.0 does not know the policy: it merges.
            Ok((strict, _)) if major < 2 => {
                eprintln!("containerd {major}: no SupplementalGroupsPolicy; groups {strict:?}")
            }
            Ok((strict, user)) => {
                let strict: Vec<&str> = strict.split_whitespace().collect();
                assert!(
                    !strict.contains(&"4000") && strict.contains(&"2000"),
                    "Strict: {strict:?}"
                );
                // containerd 2.x reports the identity it gave the process.
                if let Some(l) = user.and_then(|u| u.linux) {
                    assert_eq!(l.uid, 1000);
                    assert!(!l.supplemental_groups.contains(&4000), "{l:?}");
                }
            }
            // containerd before 2.0 knows no policy and may refuse it.
            Err(e) if major < 2 => eprintln!("containerd {major}: Strict refused: {e}"),
            Err(e) => panic!("Strict under containerd {major}: {e}"),
        }
        cri.teardown(&pod);
    });
}

#[test]
fn image_volumes_mount_an_image_read_only() {
    let test = "image_volumes_mount_an_image_read_only";
    for_each_cri(test, "imgvol", |cri| {
        let major = cri
            .containerd
            .tree
            .as_deref()
            .map_or(1, tree::containerd_major);
        let podcfg = cri.pod_config("imgvol");
        let pod = cri.run_pod(&podcfg).expect("RunPodSandbox");
        let mut c = cri.container_config("app", &["sleep", "1000"]);
        c.mounts = vec![Mount {
            container_path: "/img".into(),
            image: Some(ImageSpec {
                image: wren_tests::cri::PAUSE_IMAGE.into(),
                ..Default::default()
            }),
            readonly: true,
            ..Default::default()
        }];
        let created = cri.create_container(&pod, &podcfg, c);
        if major < 2 {
            // Image volumes came with containerd 2.1: older ones answer
            // with an error or ignore the field; neither is wren's call.
            eprintln!("containerd {major}: image volume: {created:?}");
            cri.teardown(&pod);
            return;
        }
        let app =
            created.unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.containerd.log()));
        cri.start_container(&app).expect("StartContainer");
        let (code, out, err) = cri
            .exec_sync(&app, &["sh", "-c", "ls /img; touch /img/x"], 10)
            .expect("ExecSync");
        assert!(out.contains("pause"), "the pause image's files: {out}");
        assert_ne!(code, 0, "an image volume is read-only");
        assert!(err.contains("Read-only"), "{err}");
        cri.teardown(&pod);
    });
}

#[test]
fn pod_sandbox_stats_report_the_pods_containers() {
    let test = "pod_sandbox_stats_report_the_pods_containers";
    for_each_cri(test, "podstats", |cri| {
        let podcfg = cri.pod_config("podstats");
        let (pod, app) = cri.pod_with(
            &podcfg,
            "app",
            &[
                "sh",
                "-c",
                "head -c 8000000 /dev/zero | tail -c 1 >/dev/null; sleep 1000",
            ],
            LinuxContainerConfig::default(),
        );
        let mut rs = cri.rs();
        let mut stats = None;
        wren_tests::wait_for(10, || {
            stats = Some(cri.block(rs.pod_sandbox_stats(PodSandboxStatsRequest {
                pod_sandbox_id: pod.clone(),
            })));
            matches!(&stats, Some(Ok(r)) if r.get_ref().stats.as_ref().and_then(|s| s.linux.as_ref()).is_some_and(|l| !l.containers.is_empty()))
        });
        let stats = stats
            .unwrap()
            .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"))
            .into_inner();
        let s = stats.stats.expect("stats");
        assert_eq!(
            s.attributes.as_ref().map(|a| a.id.as_str()),
            Some(pod.as_str())
        );
        let linux = s.linux.expect("linux stats");
        let cpu = linux
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|v| v.value);
        assert!(cpu.is_some_and(|v| v > 0), "pod cpu: {cpu:?}");
        let mem = linux
            .memory
            .and_then(|m| m.working_set_bytes)
            .map(|v| v.value);
        assert!(mem.is_some_and(|v| v > 0), "pod memory: {mem:?}");
        let ids: Vec<_> = linux
            .containers
            .iter()
            .filter_map(|c| c.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        assert!(ids.contains(&app), "containers {ids:?} lack {app}");
        cri.teardown(&pod);
    });
}

#[test]
fn a_missing_seccomp_profile_or_an_impossible_user_namespace_fails_and_leaves_nothing() {
    let test = "a_missing_seccomp_profile_or_an_impossible_user_namespace_fails_and_leaves_nothing";
    for_each_cri(test, "badspec", |cri| {
        let major = cri
            .containerd
            .tree
            .as_deref()
            .map_or(1, tree::containerd_major);
        let podcfg = cri.pod_config("badspec");
        let pod = cri.run_pod(&podcfg).expect("RunPodSandbox");
        let before = cri.shims();
        // A Localhost profile whose file does not exist.
        let missing = cri.containerd.inner.join("no-such-profile.json");
        let mut c = cri.container_config("app", &["sleep", "1000"]);
        c.linux = Some(secctx(|s| {
            s.seccomp = Some(k8s_cri::v1::SecurityProfile {
                profile_type: 2, // Localhost
                localhost_ref: missing.display().to_string(),
            })
        }));
        let err = cri
            .create_container(&pod, &podcfg, c)
            .expect_err("a missing seccomp profile");
        assert!(
            err.message().contains("no-such-profile.json"),
            "the error names the profile: {err}"
        );
        assert_eq!(
            cri.shims(),
            before,
            "no shim made for the refused container"
        );
        cri.teardown(&pod);

        // A user namespace no mapping can honour: container uid 0 is not
        // in the map (CRI user namespaces: containerd 1.7 and 2.x).
        if major < 2 && cri.containerd.tree.is_none() {
            return;
        }
        let mut podcfg = cri.pod_config("badmap");
        let map = vec![k8s_cri::v1::IdMapping {
            host_id: 300_000,
            container_id: 1000,
            length: 10,
        }];
        let ns = podcfg
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options
            .get_or_insert_with(Default::default);
        ns.network = NamespaceMode::Pod as i32;
        ns.userns_options = Some(k8s_cri::v1::UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids: map.clone(),
            gids: map,
        });
        let handler = if major >= 2 { "wren-runc-typed" } else { "" };
        let err = cri
            .run_pod_with(&podcfg, handler)
            .expect_err("a user namespace without container uid 0");
        assert!(
            err.message()
                .contains("linux.uidMappings: container uid 0 (root) is not mapped"),
            "the error names the mapping: {err}"
        );
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(
            wait_for_no_extra_shims(cri, &before),
            "shim left: {:?}",
            cri.shims()
        );
        for p in cri.pods() {
            let _ = cri.remove_pod(&p);
        }
    });
}

fn wait_for_no_extra_shims(cri: &Cri, before: &[i32]) -> bool {
    wren_tests::wait_for(10, || cri.shims().iter().all(|s| before.contains(s)))
}
