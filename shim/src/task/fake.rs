//! A fake runtime behind [`ContainerOps`] for the Task service's unit tests:
//! each "container" is a `sleep` child of the test process (so the service
//! gets real pidfds to watch and to signal execs through), every call is
//! recorded, and the next Create can be made to fail with a chosen runtime
//! error.
//!
//! Runs in the unit-test process only.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command};

use oci_spec::runtime::LinuxResources;
use protobuf::well_known_types::any::Any;
use wren_runtime::cgroups::oom::OomWatcher;
use wren_runtime::{CreateOptions, ExecOptions, ExecProcess};

use super::container_ops::{ContainerOps, CreatedInit, OpsError};

/// One fake container: its init and execs are `sleep` processes.
pub struct FakeContainer {
    pub id: String,
    children: Vec<Child>,
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The fake runtime.
#[derive(Default)]
pub struct Fake {
    /// `op id` of every call, in order.
    pub calls: Vec<String>,
    /// The next Create fails with this.
    pub fail_create: Option<wren_runtime::Error>,
}

fn sleeper() -> (Child, OwnedFd) {
    let child = Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep");
    // SAFETY: pidfd_open(2) of our own child, no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::c_int, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    (child, pidfd)
}

impl ContainerOps for Fake {
    type Container = FakeContainer;

    fn create(&mut self, opts: CreateOptions) -> Result<(FakeContainer, CreatedInit), OpsError> {
        self.calls.push(format!("create {}", opts.id));
        if let Some(e) = self.fail_create.take() {
            return Err(e.into());
        }
        let (child, pidfd) = sleeper();
        let created = CreatedInit {
            pid: child.id(),
            pidfd,
            console: None,
            own_pid_namespace: true,
        };
        let c = FakeContainer {
            id: opts.id,
            children: vec![child],
        };
        Ok((c, created))
    }

    fn start(&mut self, c: &mut FakeContainer) -> Result<(), OpsError> {
        self.calls.push(format!("start {}", c.id));
        Ok(())
    }

    fn kill(&mut self, c: &FakeContainer, signal: u32, all: bool) -> Result<(), OpsError> {
        self.calls.push(format!("kill {} {signal} {all}", c.id));
        Ok(())
    }

    fn pids(&mut self, c: &FakeContainer) -> Result<Vec<u32>, OpsError> {
        Ok(c.children.iter().map(Child::id).collect())
    }

    fn pause(&mut self, c: &FakeContainer) -> Result<(), OpsError> {
        self.calls.push(format!("pause {}", c.id));
        Ok(())
    }

    fn restore(
        &mut self,
        opts: wren_runtime::RestoreOptions,
    ) -> Result<(FakeContainer, CreatedInit), OpsError> {
        self.calls.push(format!(
            "restore {} {}",
            opts.id,
            opts.flags.image_path.display()
        ));
        self.create(wren_runtime::CreateOptions {
            id: opts.id,
            bundle: opts.bundle,
            state_root: opts.state_root,
            stdio: opts.stdio,
            console: opts.console,
            preserve_fds: 0,
            no_pivot: false,
            no_new_keyring: false,
            systemd_cgroup: false,
            pid_file: None,
        })
    }

    fn checkpoint(
        &mut self,
        c: &FakeContainer,
        opts: wren_runtime::CheckpointOptions,
    ) -> Result<(), OpsError> {
        self.calls.push(format!(
            "checkpoint {} {} leave_running={}",
            c.id,
            opts.flags.image_path.display(),
            opts.leave_running
        ));
        Ok(())
    }

    fn resume(&mut self, c: &FakeContainer) -> Result<(), OpsError> {
        self.calls.push(format!("resume {}", c.id));
        Ok(())
    }

    fn update(&mut self, c: &FakeContainer, _: &LinuxResources) -> Result<(), OpsError> {
        self.calls.push(format!("update {}", c.id));
        Ok(())
    }

    fn stats(&mut self, c: &FakeContainer) -> Result<Any, OpsError> {
        Err(wren_runtime::Error::NotFound(c.id.clone()).into())
    }

    fn exec(&mut self, c: &mut FakeContainer, _: ExecOptions) -> Result<ExecProcess, OpsError> {
        self.calls.push(format!("exec {}", c.id));
        let (child, pidfd) = sleeper();
        let pid = child.id() as i32;
        c.children.push(child);
        Ok(ExecProcess {
            pid,
            pidfd,
            console: None,
        })
    }

    fn oom_watcher(&mut self, _: &FakeContainer) -> Option<OomWatcher> {
        None
    }

    fn delete(&mut self, c: FakeContainer) -> Result<(), OpsError> {
        self.calls.push(format!("delete {}", c.id));
        Ok(())
    }

    fn force_delete(&mut self, _: &Path, id: &str) -> Result<(), OpsError> {
        self.calls.push(format!("force delete {id}"));
        Ok(())
    }
}
