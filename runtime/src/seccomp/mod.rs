//! OCI `linux.seccomp` → a classic-BPF seccomp filter.
//!
//! Two halves, in two processes:
//! - [`compile`] runs in the **parent** (shim daemon or `wren-oci`; threads are
//!   fine, it is plain computation). It builds the filter with libseccomp, checks
//!   the kernel knows every action and flag asked for, and exports the BPF into a
//!   [`SeccompProgram`], so a bad profile fails before any process exists and one
//!   compiled program serves the init and every exec.
//! - [`SeccompProgram::load`] runs in the **container's init** (or exec) process,
//!   single-threaded, just before `execve`. It only calls `seccomp(2)`: no
//!   libseccomp, no logging. It does not set no_new_privs: the caller sets it
//!   first when `process.noNewPrivileges` is true, and otherwise calls `load`
//!   while it still holds `CAP_SYS_ADMIN` (before the capability drop).
//!
//! - [`compile_cached`] is what creates and execs use: the same program as
//!   [`compile`], from the compiled-filter cache ([`cache`]: process memory,
//!   then `<state_root>/@seccomp-cache`) when this profile was compiled
//!   before. [`compile`] stays the uncached reference.
//!
//! Behaviour follows runc where the spec is silent: unknown syscall names are
//! skipped, several comparisons on one argument become separate rules, rules
//! whose action equals the default are dropped, `SECCOMP_FILTER_FLAG_SPEC_ALLOW`
//! is used when `flags` is absent (not when it is an empty list), and
//! `SCMP_ACT_NOTIFY` is refused as the default action and for `write`.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libseccomp::error::SeccompError as ScmpError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
/// The profile type [`compile`] takes (`linux.seccomp`), re-exported for
/// callers that do not depend on oci-spec themselves.
pub use oci_spec::runtime::LinuxSeccomp;
use oci_spec::runtime::{
    Arch, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde::{Deserialize, Serialize};

use crate::sys::seccomp as sys;

pub mod cache;

/// Number of syscall arguments a seccomp filter can inspect.
const MAX_SYSCALL_ARGS: usize = 6;
/// The kernel's limit on instructions in one classic-BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// Bytes of one `struct sock_filter`.
const INSN_SIZE: usize = 8;

/// Errors from compiling or loading a seccomp profile. Field paths are the
/// config.json paths, e.g. `linux.seccomp.syscalls[3].args[0].op`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A string field holds a name the spec does not define.
    #[error("{field}: unknown {kind} {value:?}")]
    UnknownName {
        field: String,
        kind: &'static str,
        value: String,
    },
    /// The profile does not deserialize (wrong types, missing fields).
    #[error("{field}: invalid seccomp profile")]
    ParseProfile {
        field: String,
        #[source]
        source: serde_json::Error,
    },
    /// An argument index outside 0..6.
    #[error("{field}: argument index {index} is out of range (0-5)")]
    ArgIndex { field: String, index: usize },
    /// An errnoRet that does not fit the 16 data bits of a seccomp return value.
    #[error("{field}: errno {value} is out of range (0-65535)")]
    ErrnoRange { field: String, value: u32 },
    /// SCMP_ACT_NOTIFY where it would deadlock or cannot work.
    #[error("{field}: SCMP_ACT_NOTIFY {reason}")]
    NotifyRefused { field: String, reason: &'static str },
    /// The running kernel does not know a requested action.
    #[error("{field}: action {action} is not supported by this kernel")]
    ActionUnsupported { field: String, action: String },
    /// The running kernel does not accept a requested filter flag.
    #[error("{field}: flag {flag} is not supported by this kernel")]
    FlagUnsupported { field: String, flag: String },
    /// `seccomp(2)` probing failed in an unexpected way.
    #[error("probe seccomp support ({what})")]
    ProbeKernel {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// libseccomp could not create a filter context.
    #[error("create seccomp filter (linux.seccomp.defaultAction)")]
    CreateFilter {
        #[source]
        source: ScmpError,
    },
    /// libseccomp refused an architecture.
    #[error("{field}: add architecture {arch}")]
    AddArch {
        field: String,
        arch: String,
        #[source]
        source: ScmpError,
    },
    /// libseccomp refused a rule.
    #[error("{field}: add rule for syscall {syscall:?}")]
    AddRule {
        field: String,
        syscall: String,
        #[source]
        source: ScmpError,
    },
    /// Creating the memfd the BPF is exported into.
    #[error("create memfd for seccomp BPF export")]
    CreateExportFile {
        #[source]
        source: nix::Error,
    },
    /// libseccomp could not export the BPF program.
    #[error("export seccomp BPF")]
    ExportBpf {
        #[source]
        source: ScmpError,
    },
    /// Reading the exported BPF back.
    #[error("read exported seccomp BPF")]
    ReadBpf {
        #[source]
        source: std::io::Error,
    },
    /// The program is empty, too long, or not whole instructions.
    #[error("seccomp program of {len} bytes is not 1-{MAX_INSNS} BPF instructions")]
    InvalidProgram { len: usize },
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x})")]
    LoadFilter {
        flags: u32,
        #[source]
        source: std::io::Error,
    },
}

/// One classic-BPF instruction (`struct sock_filter`): code, jt, jf, k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn(u16, u8, u8, u32);

fn no_insns() -> Arc<[Insn]> {
    Arc::from(Vec::new())
}

/// A compiled seccomp filter, ready to be sent to the init process and loaded
/// there without libseccomp.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SeccompProgram {
    /// The BPF program, as the kernel will run it. Shared: every clone (the
    /// filter cache's, each container's) points at one buffer. Not part of
    /// the serialized form: on its way to the init it travels as raw bytes
    /// after the configuration ([`crate::init::InitConfig::encode`]), where
    /// hex inside the JSON cost tens of microseconds on each side.
    #[serde(skip, default = "no_insns")]
    insns: Arc<[Insn]>,
    /// `SECCOMP_FILTER_FLAG_*` passed to `seccomp(2)`, including
    /// `NEW_LISTENER` when a rule uses SCMP_ACT_NOTIFY.
    flags: u32,
    /// Whether any rule uses SCMP_ACT_NOTIFY.
    notify: bool,
    /// `linux.seccomp.listenerPath`: where the caller sends the listener fd.
    listener_path: Option<PathBuf>,
    /// `linux.seccomp.listenerMetadata`, passed through to the agent.
    listener_metadata: Option<String>,
}

/// A filter ready to attach: [`load`](Self::load) makes one syscall and
/// allocates nothing (on success).
pub struct PreparedFilter {
    prog: Vec<libc::sock_filter>,
    flags: u32,
}

impl PreparedFilter {
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` with the prepared program.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        sys::set_mode_filter(&self.prog, self.flags).map_err(|source| SeccompError::LoadFilter {
            flags: self.flags,
            source,
        })
    }

    /// Whether the filter returns `SECCOMP_RET_ALLOW` for every one of
    /// `syscalls` on the native architecture whatever their arguments and
    /// instruction pointer: the program is run on (arch, nr) alone, and
    /// any load of another field, an unknown instruction or a jump out of
    /// the program counts as "not always". The kernel's own
    /// `seccomp_is_const_allow` reasons the same way. `false` on an
    /// architecture this does not know.
    pub fn always_allows(&self, syscalls: &[libc::c_long]) -> bool {
        let Some(arch) = NATIVE_AUDIT_ARCH else {
            return false;
        };
        syscalls
            .iter()
            .all(|&nr| u32::try_from(nr).is_ok_and(|nr| run_on_nr(&self.prog, arch, nr)))
    }
}

/// `AUDIT_ARCH_*` of the architecture this is built for (the value the
/// kernel puts in `seccomp_data.arch` for native syscalls).
const NATIVE_AUDIT_ARCH: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(0xc000_003e)
} else if cfg!(target_arch = "aarch64") {
    Some(0xc000_00b7)
} else if cfg!(target_arch = "riscv64") {
    Some(0xc000_00f3)
} else {
    None
};

/// Runs `prog` on a `seccomp_data` of which only `nr` and `arch` are
/// known: true when it returns exactly `SECCOMP_RET_ALLOW`.
fn run_on_nr(prog: &[libc::sock_filter], arch: u32, nr: u32) -> bool {
    // Offsets in struct seccomp_data.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    // Classic BPF only jumps forward, so this ends within prog.len() steps.
    while let Some(insn) = prog.get(pc) {
        let k = insn.k;
        let cond = |taken: bool| 1 + usize::from(if taken { insn.jt } else { insn.jf });
        pc += match insn.code {
            LD_W_ABS if k == NR => {
                acc = nr;
                1
            }
            LD_W_ABS if k == ARCH => {
                acc = arch;
                1
            }
            ALU_AND_K => {
                acc &= k;
                1
            }
            JA => 1 + k as usize,
            JEQ_K => cond(acc == k),
            JGT_K => cond(acc > k),
            JGE_K => cond(acc >= k),
            JSET_K => cond(acc & k != 0),
            RET_K => return k == libc::SECCOMP_RET_ALLOW,
            // An argument, the instruction pointer, X, memory: depends on
            // more than the syscall number.
            _ => return false,
        };
    }
    false
}

impl SeccompProgram {
    /// Installs the filter on the calling thread (all threads with TSYNC).
    ///
    /// Needs no_new_privs set or `CAP_SYS_ADMIN` held; this function sets
    /// neither. Returns the user-notification listener when
    /// [`uses_notify`](Self::uses_notify).
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        self.prepare()?.load()
    }

    /// The program in the kernel's layout, built now so that loading it
    /// later allocates nothing: the init prepares it before any filter can
    /// deny `brk` or `mmap`, loads it, and calls only `execve` after.
    pub fn prepare(&self) -> Result<PreparedFilter, SeccompError> {
        if self.insns.is_empty() || self.insns.len() > MAX_INSNS {
            return Err(SeccompError::InvalidProgram {
                len: self.insns.len() * INSN_SIZE,
            });
        }
        let prog = self
            .insns
            .iter()
            .map(|&Insn(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
            .collect();
        Ok(PreparedFilter {
            prog,
            flags: self.flags,
        })
    }

    /// Whether any rule uses SCMP_ACT_NOTIFY, i.e. [`load`](Self::load)
    /// returns a listener fd.
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// The `seccomp(2)` flags `load` uses.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program has no instructions (never true for a compiled one).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The program as the kernel reads it: native `struct sock_filter`s.
    pub fn bpf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.insns.len() * INSN_SIZE);
        self.append_bpf(&mut out);
        out
    }

    /// Appends [`bpf`](Self::bpf) to `out`.
    pub fn append_bpf(&self, out: &mut Vec<u8>) {
        out.reserve(self.insns.len() * INSN_SIZE);
        for &Insn(code, jt, jf, k) in self.insns.iter() {
            out.extend_from_slice(&code.to_ne_bytes());
            out.push(jt);
            out.push(jf);
            out.extend_from_slice(&k.to_ne_bytes());
        }
    }

    /// Puts back the instructions of a program that was deserialized (which
    /// carries everything but them) from the bytes [`append_bpf`](Self::append_bpf)
    /// wrote.
    pub fn set_bpf(&mut self, bytes: &[u8]) -> Result<(), SeccompError> {
        self.insns = decode(bytes)?.into();
        Ok(())
    }

    /// `linux.seccomp.listenerPath`, if set.
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// `linux.seccomp.listenerMetadata`, if set.
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }
}

/// Parses the raw `linux.seccomp` JSON object, naming the exact field of any
/// unknown action, architecture, flag or operator (serde alone reports only a
/// line and column). Use this before deserializing the whole spec when the
/// config.json text is at hand.
pub fn from_json(value: &serde_json::Value) -> Result<LinuxSeccomp, SeccompError> {
    check_names(value)?;
    LinuxSeccomp::deserialize(value).map_err(|source| SeccompError::ParseProfile {
        field: "linux.seccomp".to_owned(),
        source,
    })
}

/// The name checks of [`from_json`] alone: every action, architecture,
/// flag and operator given as a string is one the spec defines. For a
/// caller that deserializes the profile as part of a larger document (the
/// spec) and calls [`from_json`] only to explain a failure.
pub fn check_names(value: &serde_json::Value) -> Result<(), SeccompError> {
    check_name::<LinuxSeccompAction>(
        value.get("defaultAction"),
        "linux.seccomp.defaultAction",
        "action",
    )?;
    for (k, arch) in array(value.get("architectures")) {
        check_name::<Arch>(
            Some(arch),
            &format!("linux.seccomp.architectures[{k}]"),
            "architecture",
        )?;
    }
    for (k, flag) in array(value.get("flags")) {
        check_name::<LinuxSeccompFilterFlag>(
            Some(flag),
            &format!("linux.seccomp.flags[{k}]"),
            "flag",
        )?;
    }
    for (i, rule) in array(value.get("syscalls")) {
        check_name::<LinuxSeccompAction>(
            rule.get("action"),
            &format!("linux.seccomp.syscalls[{i}].action"),
            "action",
        )?;
        for (j, arg) in array(rule.get("args")) {
            check_name::<LinuxSeccompOperator>(
                arg.get("op"),
                &format!("linux.seccomp.syscalls[{i}].args[{j}].op"),
                "operator",
            )?;
        }
    }
    Ok(())
}

fn array(value: Option<&serde_json::Value>) -> impl Iterator<Item = (usize, &serde_json::Value)> {
    value
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// If `value` is a string, checks it deserializes as `T`. Other shapes are
/// left for the full deserialization to report.
fn check_name<'a, T: Deserialize<'a>>(
    value: Option<&'a serde_json::Value>,
    field: &str,
    kind: &'static str,
) -> Result<(), SeccompError> {
    match value {
        Some(v @ serde_json::Value::String(s)) if T::deserialize(v).is_err() => {
            Err(SeccompError::UnknownName {
                field: field.to_owned(),
                kind,
                value: s.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Compiles `linux.seccomp` into a loadable program. Runs in the parent.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<SeccompProgram, SeccompError> {
    let default_field = "linux.seccomp.defaultAction";
    let default_action = seccomp.default_action();
    if default_action == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyRefused {
            field: default_field.to_owned(),
            reason: "cannot be the default action",
        });
    }
    let default = to_scmp_action(
        default_action,
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut kernel = KernelActions::default();
    kernel.check(default_action, default_field)?;

    let mut ctx =
        ScmpFilterContext::new(default).map_err(|source| SeccompError::CreateFilter { source })?;
    // A binary tree over syscall numbers instead of libseccomp's default
    // linear chain of tests: O(log n) per syscall for the container's
    // whole life, and far less for the kernel to walk when it loads the
    // filter (it emulates the program for every syscall number of every
    // architecture to build its allow-cache). libseccomp < 2.5 lacks the
    // attribute: the linear program is still correct.
    if let Err(e) = ctx.set_ctl_optimize(2) {
        log::debug!("seccomp: binary-tree optimization unavailable: {e}");
    }
    for (k, arch) in seccomp.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{k}]");
        let name = arch.to_string();
        let scmp_arch: ScmpArch = name.parse().map_err(|_| SeccompError::UnknownName {
            field: field.clone(),
            kind: "architecture",
            value: name.clone(),
        })?;
        ctx.add_arch(scmp_arch)
            .map_err(|source| SeccompError::AddArch {
                field,
                arch: name,
                source,
            })?;
    }

    let mut notify = false;
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let action_field = format!("{field}.action");
        let action = to_scmp_action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            if rule.names().iter().any(|n| n == "write") {
                return Err(SeccompError::NotifyRefused {
                    field: format!("{field}.names"),
                    reason: "cannot be used for write (the agent could never report back)",
                });
            }
            notify = true;
        }
        kernel.check(rule.action(), &action_field)?;
        let (singles, combined) = conditions(rule.args().as_deref().unwrap_or_default(), &field)?;
        if action == default {
            // libseccomp refuses rules that repeat the default action; they
            // change nothing anyway.
            log::debug!("seccomp: {field} has the default action, skipped");
            continue;
        }
        for (j, name) in rule.names().iter().enumerate() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                log::debug!("seccomp: {field}.names[{j}]: unknown syscall {name:?}, skipped");
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, cmps: &[ScmpArgCompare]| {
                ctx.add_rule_conditional(action, syscall, cmps)
                    .map(|_| ())
                    .map_err(|source| SeccompError::AddRule {
                        field: field.clone(),
                        syscall: name.clone(),
                        source,
                    })
            };
            for single in &singles {
                add(&mut ctx, std::slice::from_ref(single))?;
            }
            if !combined.is_empty() || singles.is_empty() {
                add(&mut ctx, &combined)?;
            }
        }
    }

    let flags = filter_flags(seccomp.flags().as_deref(), notify)?;
    let insns = export(&ctx)?;
    Ok(SeccompProgram {
        insns: insns.into(),
        flags,
        notify,
        listener_path: seccomp.listener_path().clone(),
        listener_metadata: seccomp.listener_metadata().clone(),
    })
}

/// [`compile`] through the compiled-filter cache: the process-wide memory
/// cache, then the disk cache in `cache_dir` (normally
/// [`cache::dir_for`] the state root; `None`: memory only). Returns the
/// same program `compile` would; cache failures fall back to compiling.
/// Runs in the parent.
pub fn compile_cached(
    seccomp: &LinuxSeccomp,
    cache_dir: Option<&Path>,
) -> Result<SeccompProgram, SeccompError> {
    let disk = cache_dir.map(cache::DiskCache::new);
    cache::compile_with(seccomp, Some(cache::MemoryCache::global()), disk.as_ref())
        .map(|c| c.program)
}

/// Maps an OCI action to libseccomp's; ERRNO and TRACE default to EPERM as in
/// runc. `errno_field` names the errnoRet field for range errors.
fn to_scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<ScmpAction, SeccompError> {
    let data = || -> Result<u16, SeccompError> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(value) => u16::try_from(value).map_err(|_| SeccompError::ErrnoRange {
                field: errno_field.to_owned(),
                value,
            }),
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(data()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(data()?),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

/// Remembers which actions the kernel was already asked about.
#[derive(Default)]
struct KernelActions {
    checked: Vec<LinuxSeccompAction>,
}

impl KernelActions {
    fn check(&mut self, action: LinuxSeccompAction, field: &str) -> Result<(), SeccompError> {
        if self.checked.contains(&action) {
            return Ok(());
        }
        let ret = action.as_u32(None) & !0xffff; // SECCOMP_RET_ACTION_FULL
        let available = sys::action_available(ret).map_err(|source| SeccompError::ProbeKernel {
            what: "SECCOMP_GET_ACTION_AVAIL",
            source,
        })?;
        if !available {
            return Err(SeccompError::ActionUnsupported {
                field: field.to_owned(),
                action: action.to_string(),
            });
        }
        self.checked.push(action);
        Ok(())
    }
}

/// Splits a rule's comparisons the way runc does: an argument index compared
/// more than once yields one single-comparison rule per comparison (so they
/// are alternatives), all other comparisons go together into one rule.
/// Returns (single-comparison rules, combined comparisons).
fn conditions(
    args: &[LinuxSeccompArg],
    field: &str,
) -> Result<(Vec<ScmpArgCompare>, Vec<ScmpArgCompare>), SeccompError> {
    let mut count = [0usize; MAX_SYSCALL_ARGS];
    for (j, arg) in args.iter().enumerate() {
        let index = arg.index();
        if index >= MAX_SYSCALL_ARGS {
            return Err(SeccompError::ArgIndex {
                field: format!("{field}.args[{j}].index"),
                index,
            });
        }
        count[index] += 1;
    }
    let mut singles = Vec::new();
    let mut combined = Vec::new();
    for arg in args {
        let index = arg.index();
        // In range: checked above.
        let arg_no = index as u32;
        let cmp = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => {
                ScmpArgCompare::new(arg_no, ScmpCompareOp::NotEqual, arg.value())
            }
            LinuxSeccompOperator::ScmpCmpLt => {
                ScmpArgCompare::new(arg_no, ScmpCompareOp::Less, arg.value())
            }
            LinuxSeccompOperator::ScmpCmpLe => {
                ScmpArgCompare::new(arg_no, ScmpCompareOp::LessOrEqual, arg.value())
            }
            LinuxSeccompOperator::ScmpCmpEq => {
                ScmpArgCompare::new(arg_no, ScmpCompareOp::Equal, arg.value())
            }
            LinuxSeccompOperator::ScmpCmpGe => {
                ScmpArgCompare::new(arg_no, ScmpCompareOp::GreaterEqual, arg.value())
            }
            LinuxSeccompOperator::ScmpCmpGt => {
                ScmpArgCompare::new(arg_no, ScmpCompareOp::Greater, arg.value())
            }
            // OCI: value is the mask, valueTwo the value compared with.
            LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpArgCompare::new(
                arg_no,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        if count[index] > 1 {
            singles.push(cmp);
        } else {
            combined.push(cmp);
        }
    }
    Ok((singles, combined))
}

/// The `seccomp(2)` flags for the profile, each checked against the kernel.
fn filter_flags(
    requested: Option<&[LinuxSeccompFilterFlag]>,
    notify: bool,
) -> Result<u32, SeccompError> {
    let probe = |flags: u32| {
        sys::filter_flags_supported(flags).map_err(|source| SeccompError::ProbeKernel {
            what: "SECCOMP_SET_MODE_FILTER flags",
            source,
        })
    };
    let listener = sys::listener_flag();
    let mut flags = 0u32;
    match requested {
        // runc (since 1.2) and crun: no `flags` at all means SPEC_ALLOW when
        // the kernel has it; an explicit empty list means none.
        None => {
            let spec_allow = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
            if probe(spec_allow)? {
                flags |= spec_allow;
            }
        }
        Some(list) => {
            for (k, flag) in list.iter().enumerate() {
                let bit = match flag {
                    LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
                    LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                        libc::SECCOMP_FILTER_FLAG_TSYNC
                    }
                    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                    }
                    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                    }
                } as u32;
                // WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
                let companion = if bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32 {
                    listener
                } else {
                    0
                };
                if !probe(bit | companion)? {
                    return Err(SeccompError::FlagUnsupported {
                        field: format!("linux.seccomp.flags[{k}]"),
                        flag: flag.to_string(),
                    });
                }
                if companion != 0 && !notify {
                    log::debug!(
                        "seccomp: linux.seccomp.flags[{k}]: {flag} has no effect without SCMP_ACT_NOTIFY, not used"
                    );
                    continue;
                }
                flags |= bit;
            }
        }
    }
    if notify {
        flags |= listener;
        // TSYNC and NEW_LISTENER together need TSYNC_ESRCH (Linux 5.7).
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC as u32 != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
        }
    }
    if !probe(flags)? {
        return Err(SeccompError::FlagUnsupported {
            field: "linux.seccomp.flags".to_owned(),
            flag: format!("{flags:#x}"),
        });
    }
    Ok(flags)
}

/// Exports the filter's BPF through a memfd and decodes it.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<Insn>, SeccompError> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"wren-seccomp-bpf", MFdFlags::MFD_CLOEXEC)
        .map_err(|source| SeccompError::CreateExportFile { source })?;
    ctx.export_bpf(&fd)
        .map_err(|source| SeccompError::ExportBpf { source })?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| SeccompError::ReadBpf { source })?;
    decode(&bytes)
}

/// Decodes native-endian `struct sock_filter`s.
fn decode(bytes: &[u8]) -> Result<Vec<Insn>, SeccompError> {
    let chunks = bytes.chunks_exact(INSN_SIZE);
    if chunks.len() == 0 || !chunks.remainder().is_empty() || chunks.len() > MAX_INSNS {
        return Err(SeccompError::InvalidProgram { len: bytes.len() });
    }
    Ok(chunks
        .map(|c| {
            Insn(
                u16::from_ne_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        from_json(&v).expect("valid profile")
    }

    #[test]
    fn unknown_operator_names_the_field() {
        let v = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["b"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["c"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}
            ]
        });
        let err = from_json(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"linux.seccomp.syscalls[3].args[0].op: unknown operator "SCMP_CMP_FOO""#
        );
    }

    #[test]
    fn unknown_action_arch_flag_name_the_field() {
        let err = from_json(&json!({"defaultAction": "SCMP_ACT_NOPE"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE""#
        );
        let err = from_json(&json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80""#
        );
        let err = from_json(
            &json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_BOGUS""#
        );
        let err = from_json(&json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "KILL"}]}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"linux.seccomp.syscalls[0].action: unknown action "KILL""#
        );
        let err = from_json(&json!({"defaultAction": 3})).unwrap_err();
        assert!(matches!(err, SeccompError::ParseProfile { .. }), "{err}");
    }

    #[test]
    fn notify_refused_as_default_and_for_write() {
        let err = compile(&profile(json!({"defaultAction": "SCMP_ACT_NOTIFY"}))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"),
            "{err}"
        );
        let err = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.seccomp.syscalls[1].names: SCMP_ACT_NOTIFY"),
            "{err}"
        );
    }

    #[test]
    fn bad_index_and_errno_name_the_field() {
        let err = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                   {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.seccomp.syscalls[0].args[1].index: argument index 6 is out of range (0-5)"
        );
        let err = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.seccomp.defaultErrnoRet: errno 70000 is out of range (0-65535)"
        );
    }

    #[test]
    fn unknown_syscalls_are_skipped_and_flags_default() {
        let p = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_syscall_wren", "mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
        assert!(!p.uses_notify());
        // No `flags`: SPEC_ALLOW, as runc does. Empty list: nothing.
        assert_eq!(p.flags(), libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32);
        let p = compile(&profile(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
        ))
        .unwrap();
        assert_eq!(p.flags(), 0);
    }

    #[test]
    fn flags_map_and_notify_adds_listener() {
        let p = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap();
        assert!(p.uses_notify());
        assert_eq!(
            p.flags(),
            (libc::SECCOMP_FILTER_FLAG_LOG
                | libc::SECCOMP_FILTER_FLAG_TSYNC
                | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH) as u32
        );
        assert_eq!(p.listener_path(), Some(Path::new("/run/agent.sock")));
        // WAIT_KILLABLE_RECV without any NOTIFY rule is dropped, not an error.
        let p = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
        assert_eq!(p.flags(), 0);
    }

    #[test]
    fn duplicate_arg_indexes_become_separate_rules() {
        let arg = |index: usize, value: u64| {
            serde_json::from_value::<LinuxSeccompArg>(
                json!({"index": index, "value": value, "op": "SCMP_CMP_EQ"}),
            )
            .unwrap()
        };
        let (singles, combined) = conditions(&[arg(0, 1), arg(0, 2), arg(1, 3)], "f").unwrap();
        assert_eq!(singles.len(), 2);
        assert_eq!(combined.len(), 1);
        let (singles, combined) = conditions(&[arg(0, 1), arg(1, 2)], "f").unwrap();
        assert!(singles.is_empty());
        assert_eq!(combined.len(), 2);
    }

    #[test]
    fn program_round_trips_through_json_and_its_bytes() {
        let p = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "write", "exit_group", "socketcall"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
                         {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                         {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
        assert!(!p.is_empty() && p.len() <= MAX_INSNS);
        // The JSON carries everything but the instructions; they follow
        // as the kernel's bytes (InitConfig::encode).
        let text = serde_json::to_string(&p).unwrap();
        let mut back: SeccompProgram = serde_json::from_str(&text).unwrap();
        assert!(back.is_empty());
        back.set_bpf(&p.bpf()).unwrap();
        assert_eq!(back, p);
        assert!(back.set_bpf(&p.bpf()[..INSN_SIZE * 2 - 1]).is_err());
        assert!(back.set_bpf(&[]).is_err());
    }

    #[test]
    fn names_of_other_arches_compile_on_native_only() {
        // Docker's profile lists x86-only and arm-only syscalls; with only the
        // native arch in the filter they must not fail the compile.
        let p = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "socketcall", "_llseek", "arm_fadvise64_64", "breakpoint"],
                          "action": "SCMP_ACT_ALLOW"}]
        })));
        assert!(p.is_ok(), "{p:?}");
    }

    #[test]
    fn always_allows_only_unconditional_allows() {
        // A long allow list (a binary tree), an argument rule, a denied
        // name, the default; with and without the other x86 ABIs.
        let many: Vec<String> = [
            "read",
            "write",
            "openat",
            "close",
            "brk",
            "mmap",
            "munmap",
            "rt_sigaction",
            "rt_sigprocmask",
            "execve",
            "exit_group",
            "futex",
            "getpid",
            "fcntl",
            "dup3",
            "pipe2",
            "lseek",
            "fstat",
            "newfstatat",
            "getdents64",
            "clock_gettime",
            "nanosleep",
            "wait4",
            "kill",
            "uname",
            "getuid",
            "getgid",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for arches in [
            json!([]),
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        ] {
            let p = compile(&profile(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": arches,
                "syscalls": [{"names": many, "action": "SCMP_ACT_ALLOW"},
                             {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                              "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                             {"names": ["mkdirat"], "action": "SCMP_ACT_LOG"}]
            })))
            .unwrap();
            let f = p.prepare().unwrap();
            if NATIVE_AUDIT_ARCH.is_none() {
                assert!(!f.always_allows(&[libc::SYS_read]));
                continue;
            }
            assert!(f.always_allows(&[]));
            assert!(f.always_allows(&[
                libc::SYS_read,
                libc::SYS_write,
                libc::SYS_openat,
                libc::SYS_close,
                libc::SYS_rt_sigaction,
                libc::SYS_rt_sigprocmask,
                libc::SYS_execve,
                libc::SYS_getgid,
            ]));
            // Depends on an argument; logged; denied by default; not a
            // syscall number at all.
            assert!(!f.always_allows(&[libc::SYS_personality]));
            assert!(!f.always_allows(&[libc::SYS_mkdirat]));
            assert!(!f.always_allows(&[libc::SYS_read, libc::SYS_unlinkat]));
            assert!(!f.always_allows(&[-1]));
        }
        // Allow by default: everything, except what a rule says.
        let p = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap();
        let f = p.prepare().unwrap();
        if NATIVE_AUDIT_ARCH.is_some() {
            assert!(f.always_allows(&[libc::SYS_read, libc::SYS_openat]));
            assert!(!f.always_allows(&[libc::SYS_write]));
        }
    }

    #[test]
    fn decode_rejects_partial_instructions() {
        assert!(matches!(
            decode(&[0; 12]),
            Err(SeccompError::InvalidProgram { len: 12 })
        ));
        assert!(matches!(
            decode(&[]),
            Err(SeccompError::InvalidProgram { len: 0 })
        ));
        assert_eq!(
            decode(&[6, 0, 0, 0, 0, 0, 0xff, 0x7f]).unwrap(),
            vec![Insn(6, 0, 0, 0x7fff_0000)]
        );
    }
}
