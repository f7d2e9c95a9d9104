//! v2 device control: the rules, reduced to a [`DeviceState`], compiled to a
//! `BPF_CGROUP_DEVICE` eBPF program and attached to the container's cgroup2
//! directory. On update the new program is attached before the old ones are
//! detached, so there is never a moment without a filter.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` (access in the high 16 bits of access_type, device type in
//! the low 16) and returns 1 to allow, 0 to deny. Exceptions are checked with
//! the v1 kernel's own matching: in a deny-by-default list the requested
//! access must be a subset of an exception's; in an allow-by-default list any
//! overlap with an exception denies.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::cgroups::devices::{DevKind, DevRule, DeviceState, ACC_ALL};
use crate::cgroups::CgroupError;
use crate::sys::bpf::{self, Insn};

// Opcodes (class | size/op | source).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU64_MOV_K: u8 = 0xb7;
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JEQ_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx device types.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// Registers: r1 = ctx (then scratch), r2 = type, r3 = access, r4 = major, r5 = minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// A jump whose offset is filled in once the block's length is known.
const NEXT: i16 = i16::MIN;

/// Compiles a device state to an eBPF program.
pub fn program(state: &DeviceState) -> Vec<Insn> {
    let mut p = vec![
        Insn::new(LDX_W, R2, R1, 0, 0),
        Insn::new(ALU32_AND_K, R2, 0, 0, 0xffff),
        Insn::new(LDX_W, R3, R1, 0, 0),
        Insn::new(ALU32_RSH_K, R3, 0, 0, 16),
        Insn::new(LDX_W, R4, R1, 4, 0),
        Insn::new(LDX_W, R5, R1, 8, 0),
    ];
    let allow_list = !state.default_allow;
    for (&(kind, major, minor), &bits) in &state.exceptions {
        let mut b = Vec::new();
        match kind {
            DevKind::Block => b.push(Insn::new(JMP32_JNE_K, R2, 0, NEXT, DEV_BLOCK)),
            DevKind::Char => b.push(Insn::new(JMP32_JNE_K, R2, 0, NEXT, DEV_CHAR)),
            DevKind::All => {}
        }
        if bits != ACC_ALL {
            b.push(Insn::new(ALU32_MOV_X, R1, R3, 0, 0));
            if allow_list {
                // Requested access outside the exception's: not this one.
                b.push(Insn::new(ALU32_AND_K, R1, 0, 0, i32::from(!bits & ACC_ALL)));
                b.push(Insn::new(JMP32_JNE_K, R1, 0, NEXT, 0));
            } else {
                // No overlap with the denied access: not this one.
                b.push(Insn::new(ALU32_AND_K, R1, 0, 0, i32::from(bits)));
                b.push(Insn::new(JMP32_JEQ_K, R1, 0, NEXT, 0));
            }
        }
        if let Some(m) = major {
            b.push(Insn::new(JMP32_JNE_K, R4, 0, NEXT, m as i32));
        }
        if let Some(m) = minor {
            b.push(Insn::new(JMP32_JNE_K, R5, 0, NEXT, m as i32));
        }
        b.push(Insn::new(ALU64_MOV_K, R0, 0, 0, i32::from(allow_list)));
        b.push(Insn::new(EXIT, 0, 0, 0, 0));
        let n = b.len();
        for (i, insn) in b.iter_mut().enumerate() {
            if insn.off == NEXT {
                insn.off = (n - i - 1) as i16;
            }
        }
        p.extend(b);
    }
    p.push(Insn::new(ALU64_MOV_K, R0, 0, 0, i32::from(!allow_list)));
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    p
}

/// Loads the program for `rules` and makes it the only device program
/// attached to the cgroup2 directory `dir`.
pub fn apply(dir: &Path, rules: &[DevRule]) -> Result<(), CgroupError> {
    let insns = program(&DeviceState::from_rules(rules));
    let err = |op, source| CgroupError::DeviceFilter {
        op,
        path: dir.to_owned(),
        source,
    };
    let prog = bpf::load_cgroup_device_prog(&insns, c"Apache-2.0").map_err(|e| err("load", e))?;
    let cg = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CgroupError::Open {
        path: dir.to_owned(),
        source: e.into(),
    })?;
    let old =
        bpf::prog_query(cg.as_fd(), bpf::ATTACH_CGROUP_DEVICE).map_err(|e| err("query", e))?;
    bpf::prog_attach(
        cg.as_fd(),
        prog.as_fd(),
        bpf::ATTACH_CGROUP_DEVICE,
        bpf::F_ALLOW_MULTI,
    )
    .map_err(|e| err("attach", e))?;
    for id in old {
        let fd = match bpf::prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(err("detach", e)),
        };
        match bpf::prog_detach(cg.as_fd(), fd.as_fd(), bpf::ATTACH_CGROUP_DEVICE) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err("detach", e)),
        }
    }
    Ok(())
}

/// Ids of the device programs attached directly to `dir`.
pub fn attached(dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let cg = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CgroupError::Open {
        path: dir.to_owned(),
        source: e.into(),
    })?;
    bpf::prog_query(cg.as_fd(), bpf::ATTACH_CGROUP_DEVICE).map_err(|source| {
        CgroupError::DeviceFilter {
            op: "query",
            path: dir.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE};

    /// A tiny interpreter for exactly the instructions `program` emits, so the
    /// program's logic can be checked without the kernel.
    fn run(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                ALU32_AND_K => r[dst] = u64::from(r[dst] as u32 & i.imm as u32),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JMP32_JNE_K => {
                    if r[dst] as u32 != i.imm as u32 {
                        pc += i.off as usize
                    }
                }
                JMP32_JEQ_K => {
                    if r[dst] as u32 == i.imm as u32 {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    const C: u32 = 2;
    const B: u32 = 1;

    #[test]
    fn allow_list_program() {
        let mut st = DeviceState::default();
        st.exceptions
            .insert((DevKind::Char, Some(1), Some(3)), ACC_ALL);
        st.exceptions
            .insert((DevKind::Char, Some(5), None), ACC_READ);
        st.exceptions
            .insert((DevKind::Block, None, None), ACC_MKNOD);
        let p = program(&st);
        let rwm = u32::from(ACC_ALL);
        assert_eq!(run(&p, C, rwm, 1, 3), 1);
        assert_eq!(run(&p, C, rwm, 1, 5), 0);
        assert_eq!(run(&p, C, u32::from(ACC_READ), 5, 77), 1);
        assert_eq!(run(&p, C, u32::from(ACC_READ | ACC_WRITE), 5, 77), 0);
        assert_eq!(run(&p, B, u32::from(ACC_MKNOD), 8, 0), 1);
        assert_eq!(run(&p, B, u32::from(ACC_READ), 8, 0), 0);
        assert_eq!(run(&p, C, u32::from(ACC_MKNOD), 8, 0), 0);
    }

    #[test]
    fn deny_list_program() {
        let mut st = DeviceState {
            default_allow: true,
            ..Default::default()
        };
        st.exceptions
            .insert((DevKind::Char, Some(1), Some(5)), ACC_WRITE);
        let p = program(&st);
        assert_eq!(run(&p, C, u32::from(ACC_READ), 1, 5), 1);
        assert_eq!(run(&p, C, u32::from(ACC_READ | ACC_WRITE), 1, 5), 0);
        assert_eq!(run(&p, C, u32::from(ACC_WRITE), 1, 3), 1);
    }

    #[test]
    fn empty_state_denies_everything() {
        let p = program(&DeviceState::default());
        assert_eq!(run(&p, C, 7, 1, 3), 0);
    }
}
