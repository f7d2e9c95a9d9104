//! A CRI client that makes the kubelet's calls against a private
//! containerd with its CRI plugin on and wren as the default runtime
//! handler, configured the way an operator would (`runtime_type =
//! "io.containerd.wren.v2"` and an `[options]` table). The pause image is
//! built here from a tiny static C program; the app image is the tests'
//! busybox. Pods run under a cgroup parent of their own, removed with the
//! client.
//!
//! Runs in the test processes only (a current-thread tokio runtime drives
//! the gRPC calls).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::containerd::{busybox_image, image_tar, Containerd, IMAGE};

/// The sandbox ("pause") image.
pub const PAUSE_IMAGE: &str = "docker.io/library/wren-pause:test";

/// The pause program: sleeps until SIGTERM/SIGINT, reaps what is left to it.
const PAUSE_C: &str = r#"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGTERM, quit);
    signal(SIGINT, quit);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"#;

/// Builds the pause image's OCI layout tar in `dir`.
fn pause_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("pause-rootfs");
    std::fs::create_dir_all(&rootfs).expect("mkdir");
    let src = dir.join("pause.c");
    std::fs::write(&src, PAUSE_C).expect("write pause.c");
    let out = crate::run(
        Command::new("gcc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(rootfs.join("pause"))
            .arg(&src),
    );
    assert!(
        out.status.success(),
        "gcc pause: {}",
        crate::text(&out.stderr)
    );
    image_tar(
        dir,
        &rootfs,
        PAUSE_IMAGE,
        serde_json::json!({"Entrypoint": ["/pause"]}),
    )
}

/// The CRI plugin's configuration for containerd 2.x (config version 3,
/// the runtime and images plugins split out of the gRPC one), as an
/// operator writes it for a runtime handler.
fn cri_config_v3() -> String {
    r#"
[plugins."io.containerd.cri.v1.images"]
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "docker.io/library/wren-pause:test"
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "wren"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren]
      runtime_type = "io.containerd.wren.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren.options]
        Root = "{dir}/wren-root"
    # containerd 2.x passes IoUid/IoGid for user-namespaced pods only in
    # runc's Options: a runc-typed handler whose shim is wren.
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren-runc-typed]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "{dir}/bin/containerd-shim-wren-v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren-runc-typed.options]
        Root = "{dir}/wren-root"
    # The reference: containerd's own runc shim and runc, for side-by-side
    # figures (`wren-cri-bench`).
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        Root = "{dir}/runc-root"
    # A handler converted from crun/runc that still names a binary.
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren-binary]
      runtime_type = "io.containerd.wren.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren-binary.options]
        Root = "{dir}/wren-root"
        BinaryName = "/usr/bin/crun"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren-systemd]
      runtime_type = "io.containerd.wren.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wren-systemd.options]
        Root = "{dir}/wren-root"
        SystemdCgroup = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{dir}/cni"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#
    .into()
}

/// The CRI plugin's configuration for containerd 1.6 and 1.7 (config
/// version 2): wren as the default runtime, its state root private to this
/// containerd, streaming on 127.0.0.1.
fn cri_config_v2() -> String {
    r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/wren-pause:test"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  enable_selinux = false
  # Root on these machines lacks CAP_SYS_RESOURCE: lowering oom_score_adj
  # (the pause container's -998) fails, in runc as in wren.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "wren"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wren]
      runtime_type = "io.containerd.wren.v2"
      # 1.6 passes a non-runc runtime only TypeUrl and ConfigPath of its
      # [options] (1.7 also the table itself, when there is no ConfigPath).
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wren.options]
        ConfigPath = "{dir}/wren-options.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{dir}/runc-root"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wren-binary]
      runtime_type = "io.containerd.wren.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wren-binary.options]
        ConfigPath = "{dir}/wren-binary-options.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wren-systemd]
      runtime_type = "io.containerd.wren.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wren-systemd.options]
        ConfigPath = "{dir}/wren-systemd-options.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{dir}/cni"
"#
    .into()
}

/// True when the CRI tests can run here (the shim tests' needs and gcc).
pub fn cri_tests_can_run(test: &str) -> bool {
    if !crate::containerd::shim_tests_can_run(test) {
        return false;
    }
    if crate::run(Command::new("gcc").arg("--version"))
        .status
        .success()
    {
        true
    } else {
        crate::skip(
            test,
            crate::Skip::Missing("gcc (for the pause image)".into()),
        );
        false
    }
}

/// Runs `body` against CRI on every containerd of the matrix: the host's
/// 1.6, trixie's 1.7, sid's 2.1 (a missing tree is a recorded skip). The
/// client is started with tag `tag`-<suite>.
pub fn for_each_cri(test: &str, tag: &str, body: impl Fn(&Cri)) {
    for_each_cri_mut(test, tag, |cri| body(cri))
}

/// [`for_each_cri`] for a body that restarts containerd.
pub fn for_each_cri_mut(test: &str, tag: &str, body: impl Fn(&mut Cri)) {
    if !cri_tests_can_run(test) {
        return;
    }
    for suite in crate::tree::MATRIX {
        let t = match suite {
            None => None,
            Some(s) => match crate::tree::get(test, s) {
                Some(t) => Some(t),
                None => continue,
            },
        };
        eprintln!(
            "== {test} under containerd of {}",
            crate::tree::label(suite)
        );
        let mut cri = Cri::start_in(
            t.as_deref(),
            &format!("{tag}-{}", crate::tree::label(suite)),
        );
        body(&mut cri);
    }
}

/// A container's Linux config with only a security context, set up by `f`.
pub fn secctx(f: impl FnOnce(&mut LinuxContainerSecurityContext)) -> LinuxContainerConfig {
    let mut s = LinuxContainerSecurityContext::default();
    f(&mut s);
    LinuxContainerConfig {
        resources: None,
        security_context: Some(s),
    }
}

/// A private containerd with CRI and a client of it.
pub struct Cri {
    pub containerd: Containerd,
    rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// The pods' cgroup parent (`/wren-cri-<pid>-<tag>`), in every hierarchy.
    pub cgroup_parent: String,
    /// Where pod logs go (inside containerd's directory, so a containerd
    /// in a tree can write them).
    pub logs: PathBuf,
}

impl Cri {
    /// Starts containerd with CRI, imports the busybox and pause images into
    /// `k8s.io` and connects.
    pub fn start(tag: &str) -> Cri {
        Self::start_in(None, tag)
    }

    /// [`Cri::start`] with the containerd of a Debian tree (None: the host's).
    pub fn start_in(tree: Option<&Path>, tag: &str) -> Cri {
        let config = if tree.is_some_and(|t| crate::tree::containerd_major(t) >= 2) {
            cri_config_v3()
        } else {
            cri_config_v2()
        };
        let containerd = Containerd::start_in(tree, "k8s.io", false, Some(&config));
        // Pod networks: Debian's CNI plugins, a bridge on a private subnet
        // inside containerd's own network namespace.
        let cni = containerd.dir.path().join("cni");
        std::fs::create_dir_all(&cni).expect("mkdir cni");
        let ipam = containerd.inner.join("cni-ipam");
        std::fs::write(
            cni.join("10-wren.conflist"),
            serde_json::json!({
                "cniVersion": "1.0.0",
                "name": "wren-test",
                "plugins": [
                    {"type": "bridge", "bridge": "wrencni0", "isGateway": true,
                     "ipMasq": false, "hairpinMode": true,
                     "ipam": {"type": "host-local", "dataDir": ipam,
                              "ranges": [[{"subnet": "10.88.77.0/24"}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}},
                    {"type": "portmap", "capabilities": {"portMappings": true}}
                ]
            })
            .to_string(),
        )
        .expect("write the CNI config");
        // The runtimes' options files (ConfigPath) of the v2 configuration.
        let root = containerd.inner.join("wren-root");
        let d = containerd.dir.path();
        std::fs::write(
            d.join("wren-options.toml"),
            format!("Root = \"{}\"\n", root.display()),
        )
        .expect("write wren-options.toml");
        std::fs::write(
            d.join("wren-binary-options.toml"),
            format!(
                "Root = \"{}\"\nBinaryName = \"/usr/bin/crun\"\n",
                root.display()
            ),
        )
        .expect("write wren-binary-options.toml");
        std::fs::write(
            d.join("wren-systemd-options.toml"),
            format!("Root = \"{}\"\nSystemdCgroup = true\n", root.display()),
        )
        .expect("write wren-systemd-options.toml");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let sock = containerd.dir.path().join("c.sock");
        // containerd's socket may not answer yet: the import used to wait
        // for it before, by running first.
        let connect = || {
            let sock = sock.clone();
            rt.block_on(async {
                Endpoint::try_from("http://[::]:50051")
                    .expect("endpoint")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(sock).await?,
                            ))
                        }
                    }))
                    .await
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let channel = loop {
            match connect() {
                Ok(c) => break c,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("connect to containerd's CRI: {e}\n{}", containerd.log()),
            }
        };
        let logs = containerd.dir.path().join("pod-logs");
        std::fs::create_dir_all(&logs).expect("mkdir pod-logs");
        let cri = Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            rt,
            containerd,
            cgroup_parent: format!("/wren-cri-{}-{tag}", std::process::id()),
            logs,
        };
        // The CRI plugin is ready once it answers Status.
        assert!(
            crate::wait_for(10, || cri.status().is_ok()),
            "CRI did not come up:\n{}",
            cri.containerd.log()
        );
        // Import only now, and wait until CRI's own image store has both
        // images: containerd 2.x's CRI fills that store from image events,
        // and an image imported while the plugin was still starting can be
        // missed, after which RunPodSandbox tries to pull the pause image
        // from docker.io (seen in CI under sid's containerd).
        let tars = [
            busybox_image(cri.containerd.dir.path()),
            pause_image(cri.containerd.dir.path()),
        ];
        for attempt in 0..3 {
            for tar in &tars {
                let tar = cri.containerd.inner_path(tar);
                let out = cri
                    .containerd
                    .ctr(&["images", "import", tar.to_str().expect("utf-8")]);
                assert!(
                    out.status.success(),
                    "import: {}\n{}",
                    crate::text(&out.stderr),
                    cri.containerd.log()
                );
            }
            if crate::wait_for(5, || cri.image_known(IMAGE) && cri.image_known(PAUSE_IMAGE)) {
                return cri;
            }
            eprintln!(
                "CRI does not see the imported images yet (attempt {attempt}); importing again"
            );
        }
        panic!(
            "CRI never saw the imported images {IMAGE} and {PAUSE_IMAGE}:\n{}",
            cri.containerd.log()
        );
    }

    /// Whether CRI's image service knows `image` (ImageStatus has it).
    pub fn image_known(&self, image: &str) -> bool {
        let mut is = self.images.clone();
        self.block(is.image_status(ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .is_ok_and(|r| r.into_inner().image.is_some())
    }

    /// Runs one async call to completion.
    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// PullImage, as the kubelet pulls a pod's image; its image ref.
    pub fn pull_image(&self, image: &str) -> Result<String, tonic::Status> {
        let mut is = self.images.clone();
        self.block(is.pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .map(|r| r.into_inner().image_ref)
    }

    /// The runtime service client, for calls without a helper here.
    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// Runs a pod with `config` and one container `name` running `command`
    /// with `linux` settings; returns (pod id, container id), started.
    pub fn pod_with(
        &self,
        config: &PodSandboxConfig,
        name: &str,
        command: &[&str],
        linux: LinuxContainerConfig,
    ) -> (String, String) {
        let pod = self
            .run_pod(config)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", self.containerd.log()));
        let mut c = self.container_config(name, command);
        c.linux = Some(linux);
        let id = self
            .create_container(&pod, config, c)
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"));
        self.start_container(&id)
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        (pod, id)
    }

    /// Stops and removes a pod (and its containers).
    pub fn teardown(&self, pod: &str) {
        self.stop_pod(pod).expect("StopPodSandbox");
        self.remove_pod(pod).expect("RemovePodSandbox");
    }

    pub fn status(&self) -> Result<StatusResponse, tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.status(StatusRequest { verbose: false }))
            .map(|r| r.into_inner())
    }

    /// A pod's config: host network (no CNI needed), the test's cgroup
    /// parent, logs under the client's directory.
    pub fn pod_config(&self, name: &str) -> PodSandboxConfig {
        let uid = format!("{name}-{}", std::process::id());
        let log_dir = self.logs.join(&uid);
        std::fs::create_dir_all(&log_dir).expect("mkdir logs");
        let log_dir = self.containerd.inner_path(&log_dir);
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: "wren-test".into(),
                attempt: 0,
            }),
            // The kubelet sends no hostname for a host-network pod (the UTS
            // namespace is the node's; runc and wren refuse one).
            hostname: String::new(),
            log_directory: log_dir.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/pod{uid}", self.cgroup_parent),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn run_pod(&self, config: &PodSandboxConfig) -> Result<String, tonic::Status> {
        self.run_pod_with(config, "")
    }

    /// RunPodSandbox with a runtime handler (a RuntimeClass): "wren" (the
    /// default) or "wren-systemd" (`SystemdCgroup = true`).
    pub fn run_pod_with(
        &self,
        config: &PodSandboxConfig,
        handler: &str,
    ) -> Result<String, tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        }))
        .map(|r| r.into_inner().pod_sandbox_id)
    }

    /// A pod with a network of its own (CNI) and a hostname.
    pub fn net_pod_config(&self, name: &str) -> PodSandboxConfig {
        let mut c = self.pod_config(name);
        c.hostname = name.into();
        if let Some(ns) = c
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .and_then(|s| s.namespace_options.as_mut())
        {
            ns.network = NamespaceMode::Pod as i32;
        }
        c
    }

    /// The pod's IP, from PodSandboxStatus.
    pub fn pod_ip(&self, pod: &str) -> String {
        let mut rs = self.runtime.clone();
        self.block(rs.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        }))
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .unwrap_or_default()
    }

    /// Runs `f` on a thread in containerd's network namespace (where its
    /// streaming server listens on 127.0.0.1).
    pub fn in_node_net<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let pid = self.containerd.pid().expect("containerd runs");
        std::thread::spawn(move || {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open netns");
            // SAFETY: setns on this (new, single-purpose) thread with a
            // valid namespace fd; other threads are not affected.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the node's netns")
    }

    /// A streaming Exec, as `kubectl exec` through the kubelet does: the
    /// Exec RPC's URL, then websocket `v4.channel.k8s.io` (channel byte
    /// first: 1 stdout, 2 stderr, 3 the final status). Returns (stdout,
    /// stderr, status JSON).
    pub fn stream_exec(&self, id: &str, cmd: &[&str]) -> (String, String, String) {
        let mut rs = self.runtime.clone();
        let url = self
            .block(rs.exec(ExecRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty: false,
                stdin: false,
                stdout: true,
                stderr: true,
            }))
            .expect("Exec")
            .into_inner()
            .url;
        self.in_node_net(move || {
            let channels = websocket_channels(&url, "v4.channel.k8s.io", &[]);
            (
                crate::text(&channels[1]),
                crate::text(&channels[2]),
                crate::text(&channels[3]),
            )
        })
    }

    /// A streaming Attach to a container started with stdin: `input` goes
    /// to its stdin (then closed); returns its stdout until it exits.
    pub fn stream_attach(&self, id: &str, input: &[u8]) -> String {
        let mut rs = self.runtime.clone();
        let url = self
            .block(rs.attach(AttachRequest {
                container_id: id.into(),
                stdin: true,
                tty: false,
                stdout: true,
                stderr: true,
            }))
            .expect("Attach")
            .into_inner()
            .url;
        let input = input.to_vec();
        self.in_node_net(move || {
            let channels = websocket_channels(&url, "v4.channel.k8s.io", &[(0, input)]);
            crate::text(&channels[1])
        })
    }

    /// PortForward to `port` of the pod, one request written on the
    /// forwarded connection; returns what came back.
    pub fn port_forward(&self, pod: &str, port: u16, request: &[u8]) -> String {
        let mut rs = self.runtime.clone();
        let url = self
            .block(rs.port_forward(PortForwardRequest {
                pod_sandbox_id: pod.into(),
                port: vec![port as i32],
            }))
            .expect("PortForward")
            .into_inner()
            .url;
        let url = format!("{url}?ports={port}");
        let request = request.to_vec();
        self.in_node_net(move || {
            // Data channel 0, error channel 1; the client's first message
            // on the data channel is the request.
            let channels = websocket_channels(&url, "v4.channel.k8s.io", &[(0, request)]);
            crate::text(&channels[0])
        })
    }

    /// Network interfaces in containerd's network namespace.
    pub fn node_links(&self) -> String {
        let Some(child) = self.containerd.pid() else {
            return String::new();
        };
        crate::text(
            &crate::run(Command::new("nsenter").args([
                "--net",
                "--target",
                &child.to_string(),
                "--",
                "ip",
                "-o",
                "link",
            ]))
            .stdout,
        )
    }

    /// A busybox container running `command` in the pod.
    pub fn container_config(&self, name: &str, command: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    pub fn create_container(
        &self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.create_container(CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        }))
        .map(|r| r.into_inner().container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.start_container(StartContainerRequest {
            container_id: id.into(),
        }))
        .map(drop)
    }

    /// ExecSync: (exit code, stdout, stderr).
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<(i32, String, String), tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }))
        .map(|r| {
            let r = r.into_inner();
            (r.exit_code, crate::text(&r.stdout), crate::text(&r.stderr))
        })
    }

    pub fn container_status(&self, id: &str) -> Result<ContainerStatus, tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        }))
        .map(|r| r.into_inner().status.unwrap_or_default())
    }

    /// A log path CRI reported, as this process reads it.
    pub fn log_file(&self, status: &ContainerStatus) -> PathBuf {
        self.containerd.host_path(Path::new(&status.log_path))
    }

    /// Waits until the container has exited; returns its status.
    pub fn wait_exited(&self, id: &str, secs: u64) -> ContainerStatus {
        let mut last = ContainerStatus::default();
        crate::wait_for(secs, || {
            last = self.container_status(id).unwrap_or_default();
            last.state == ContainerState::ContainerExited as i32
        });
        last
    }

    pub fn stop_container(&self, id: &str, grace: i64) -> Result<(), tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.stop_container(StopContainerRequest {
            container_id: id.into(),
            timeout: grace,
        }))
        .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.remove_container(RemoveContainerRequest {
            container_id: id.into(),
        }))
        .map(drop)
    }

    pub fn stop_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        }))
        .map(drop)
    }

    pub fn remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let mut rs = self.runtime.clone();
        self.block(rs.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        }))
        .map(drop)
    }

    /// Live shim processes of this containerd.
    pub fn shims(&self) -> Vec<i32> {
        crate::containerd::all_shims_in("k8s.io", &self.containerd.inner)
    }

    /// Every pod sandbox id CRI knows.
    pub fn pods(&self) -> Vec<String> {
        let mut rs = self.runtime.clone();
        self.block(rs.list_pod_sandbox(ListPodSandboxRequest { filter: None }))
            .map(|r| r.into_inner().items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }

    /// The pod's cgroup directories (every hierarchy) under the parent.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(self.cgroup_parent.trim_start_matches('/')))
            .filter(|p| p.exists())
            .collect()
    }
}

/// Speaks the Kubernetes streaming websocket protocol at `url`: sends each
/// (channel, bytes) of `send`, then collects what arrives per channel until
/// the server closes. Each server stream first announces its port (two
/// bytes) on port-forward channels; those are dropped.
fn websocket_channels(url: &str, protocol: &str, send: &[(u8, Vec<u8>)]) -> Vec<Vec<u8>> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url
        .as_str()
        .into_client_request()
        .expect("websocket request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    let authority = req.uri().authority().expect("host:port").to_string();
    let tcp = std::net::TcpStream::connect(&authority).expect("connect to the streaming server");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let (mut ws, _) = tungstenite::client(req, tcp).expect("websocket handshake");
    let mut out = vec![Vec::new(); 5];
    let mut seen_port = [false; 5];
    for (ch, bytes) in send {
        let mut m = vec![*ch];
        m.extend_from_slice(bytes);
        ws.send(Message::Binary(m.into())).expect("send");
    }
    let forwarding = url.contains("portforward");
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) if !b.is_empty() => {
                let ch = (b[0] as usize).min(4);
                let mut data = &b[1..];
                if forwarding && !seen_port[ch] && data.len() >= 2 {
                    seen_port[ch] = true;
                    data = &data[2..];
                }
                out[ch].extend_from_slice(data);
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// SIGKILLs every process in a cgroup directory tree.
fn kill_cgroup_tree(dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            kill_cgroup_tree(&e.path());
        }
    }
}

/// Removes a cgroup directory tree, deepest first.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = crate::wait_for(2, || std::fs::remove_dir(dir).is_ok() || !dir.exists());
}

impl Drop for Cri {
    fn drop(&mut self) {
        // What a failed test left: pods (with their containers) through CRI.
        for pod in self.pods() {
            let _ = self.stop_pod(&pod);
            let _ = self.remove_pod(&pod);
        }
        for d in self.cgroup_dirs() {
            kill_cgroup_tree(&d);
        }
        crate::reap();
        for d in self.cgroup_dirs() {
            remove_cgroup_tree(&d);
        }
    }
}
