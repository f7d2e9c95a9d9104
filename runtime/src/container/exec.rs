//! Starting a process in a created or running container
//! ([`Container::exec`]): it joins every namespace and the cgroup of the
//! init, with its own user, capabilities, environment, cwd and terminal,
//! under the container's seccomp profile.
//!
//! Runs in the caller; the process itself is set up by the init code
//! (`init`, `Setup::Exec`).

use std::os::fd::AsFd;

use super::error::sys_err;
use super::init_driver::{launch, CgroupWork, LaunchArgs};
use super::{write_pid_file, ConsoleMode, Container, Error, ExecOptions, ExecProcess};
use crate::capabilities;
use crate::cgroups;
use crate::init::{InitConfig, Setup};
use crate::namespaces;
use crate::seccomp;
use crate::spec;
use crate::state::Status;
use crate::{console, sys, timing};

fn ns_flags(spec_ns: &[namespaces::Namespace]) -> i32 {
    spec_ns
        .iter()
        .fold(0, |acc, n| acc | namespaces::clone_flag(n.kind))
}

impl Container {
    /// Start `opts.process` inside the running container: it joins every
    /// namespace and the cgroup of the init, with its own user, caps, env,
    /// cwd, terminal and the container's seccomp profile.
    pub fn exec(&mut self, opts: ExecOptions) -> Result<ExecProcess, Error> {
        let (wanted, ok): (_, &[Status]) = if opts.ignore_paused {
            (
                "created, running or paused",
                &[Status::Created, Status::Running, Status::Paused],
            )
        } else {
            ("created or running", &[Status::Created, Status::Running])
        };
        self.require("exec", wanted, ok)?;
        let sub_cgroup = match (&opts.sub_cgroup, &self.state.cgroup) {
            (Some(sub), Some(cg)) => Some(cg.sub_cgroup(sub)?),
            (Some(sub), None) => {
                return Err(cgroups::CgroupError::InvalidSubCgroup {
                    path: sub.clone(),
                    reason: "the container has no cgroup".into(),
                }
                .into())
            }
            // A container that delegated its cgroup's controllers to its
            // own sub-cgroups: follow the init into its sub-cgroup.
            (None, Some(cg)) => Some(cg.exec_target(self.state.pid)?),
            (None, None) => None,
        };
        spec::validate_process(&opts.process, "process")?;
        let ns = spec::namespaces(&self.state.spec)?;
        if self.seccomp.is_none() {
            if let Some(s) = self
                .state
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().as_ref())
            {
                let cache = self.dir.parent().map(seccomp::cache::dir_for);
                self.seccomp = Some(seccomp::compile_cached(s, cache.as_deref())?);
            }
        }
        let caps = opts
            .process
            .capabilities()
            .as_ref()
            .map(capabilities::resolve)
            .transpose()?;
        let init_pidfd = match &self.pidfd {
            Some(fd) => fd.try_clone().map_err(sys_err("dup pidfd"))?,
            None => sys::pidfd_open(self.state.pid).map_err(sys_err("pidfd_open"))?,
        };
        let config = InitConfig {
            id: self.state.id.clone(),
            process: opts.process.clone(),
            caps,
            namespaces: ns.clone(),
            time_offsets: None,
            seccomp: self.seccomp.clone(),
            preserve_fds: opts.preserve_fds,
            new_keyring: !self.state.no_new_keyring,
            setup: Setup::Exec {
                ns_flags: ns_flags(&ns),
                root_of: self
                    .state
                    .host_mounts_before
                    .is_some()
                    .then_some(self.state.pid),
            },
            timing: timing::enabled(),
        };
        let st = self.state.oci(Status::Running);
        let initial_affinity = opts
            .process
            .exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.initial().clone())
            .filter(|l| !l.is_empty());
        let listener = self.seccomp.as_ref().and_then(|s| {
            s.listener_path().map(|p| {
                (
                    p.to_path_buf(),
                    s.listener_metadata().unwrap_or("").to_string(),
                )
            })
        });
        let launched = launch(
            LaunchArgs {
                id: &self.state.id,
                config: &config,
                stdio: &opts.stdio,
                extra: init_pidfd.as_fd(),
                cgroup: sub_cgroup.as_ref().or(self.state.cgroup.as_ref()),
                id_maps: None,
                until_exec: true,
                listener: listener
                    .as_ref()
                    .map(|(p, m)| (p.as_path(), m.as_str(), st.clone())),
                initial_affinity: initial_affinity.as_deref(),
                cgroup_work: CgroupWork::JoinOnly,
            },
            &mut |_| Ok(String::new()),
        )?;
        let mut console = launched.console;
        if let (ConsoleMode::Socket(path), Some(master)) = (&opts.console, &console) {
            console::send_to_socket(path, master.as_fd())?;
            console = None;
        }
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, launched.pid)?;
        }
        Ok(ExecProcess {
            pid: launched.pid,
            pidfd: launched.pidfd,
            console,
        })
    }
}
