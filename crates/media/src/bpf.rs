//! The pieces of BPF the relay needs, without a BPF toolchain: an instruction encoder with
//! labels, and the bpf(2) commands for maps, programs and links.
//!
//! The programs (receive steering, in-kernel forwarding) are a few dozen instructions each,
//! assembled here at run time: clang and bpf-linker (nightly Rust) are not part of this build,
//! and crates such as aya load compiled objects rather than assemble them.
#![allow(
    unsafe_code,
    reason = "the bpf(2) system call has no safe wrapper in std or libc; every block states its invariants"
)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub const BPF_MAP_CREATE: libc::c_long = 0;
pub const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub const BPF_PROG_LOAD: libc::c_long = 5;
pub const BPF_LINK_CREATE: libc::c_long = 28;

pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_SOCKMAP: u32 = 15;
/// `BPF_F_MMAPABLE`: an array map user space can `mmap`.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

// Helper function ids (include/uapi/linux/bpf.h, `__BPF_FUNC_MAPPER`).
pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
pub const HELPER_SKB_STORE_BYTES: i32 = 9;
pub const HELPER_L3_CSUM_REPLACE: i32 = 10;
pub const HELPER_L4_CSUM_REPLACE: i32 = 11;
pub const HELPER_CSUM_DIFF: i32 = 28;
pub const HELPER_SK_RELEASE: i32 = 86;
pub const HELPER_SK_ASSIGN: i32 = 124;
pub const HELPER_REDIRECT_NEIGH: i32 = 152;

/// One BPF instruction, `struct bpf_insn` packed into its 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Instruction(pub u64);

impl Instruction {
    pub const fn new(code: u8, dst: u8, src: u8, offset: i16, imm: i32) -> Self {
        Instruction(
            code as u64
                | (((dst & 0x0f) | ((src & 0x0f) << 4)) as u64) << 8
                | (offset as u16 as u64) << 16
                | (imm as u32 as u64) << 32,
        )
    }

    #[cfg(test)]
    pub const fn code(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    #[cfg(test)]
    pub const fn offset(self) -> i16 {
        ((self.0 >> 16) & 0xffff) as u16 as i16
    }
}

// Opcodes: class | size/operation | mode/source.
pub const LDX_B: u8 = 0x71;
pub const LDX_H: u8 = 0x69;
pub const LDX_W: u8 = 0x61;
pub const ST_W: u8 = 0x62;
pub const STX_W: u8 = 0x63;
/// `lock *(u64 *)(dst + off) += src` (BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD).
pub const ATOMIC_DW: u8 = 0xdb;
pub const LD_IMM64: u8 = 0x18;
pub const ALU64_ADD_K: u8 = 0x07;
pub const ALU64_SUB_K: u8 = 0x17;
pub const ALU64_OR_X: u8 = 0x4f;
pub const ALU64_LSH_K: u8 = 0x67;
pub const ALU64_AND_K: u8 = 0x57;
pub const ALU64_MOV_K: u8 = 0xb7;
pub const ALU64_MOV_X: u8 = 0xbf;
pub const ALU32_SUB_K: u8 = 0x14;
/// Byte swap to big endian (`imm` = width); on a little-endian host, network → host order.
pub const ALU32_TO_BE: u8 = 0xdc;
pub const JMP_JEQ_K: u8 = 0x15;
pub const JMP_JNE_K: u8 = 0x55;
pub const JMP_JNE_X: u8 = 0x5d;
pub const JMP_JGT_X: u8 = 0x2d;
pub const JMP32_JEQ_K: u8 = 0x16;
pub const JMP32_JNE_K: u8 = 0x56;
pub const JMP32_JLT_K: u8 = 0xa6;
pub const JMP32_JGT_K: u8 = 0x26;
pub const JMP_CALL: u8 = 0x85;
pub const JMP_EXIT: u8 = 0x95;
pub const PSEUDO_MAP_FD: u8 = 1;

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const FP: u8 = 10;

/// A jump target, bound to an instruction index with [`Program::bind`].
#[derive(Debug, Clone, Copy)]
pub struct Label(usize);

/// A tiny assembler: forward jumps are patched once every label is bound.
#[derive(Debug, Default)]
pub struct Program {
    code: Vec<Instruction>,
    labels: Vec<Option<usize>>,
    jumps: Vec<(usize, Label)>,
}

impl Program {
    pub fn push(&mut self, code: u8, dst: u8, src: u8, offset: i16, imm: i32) {
        self.code
            .push(Instruction::new(code, dst, src, offset, imm));
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.code.len());
    }

    /// `if (dst <op> imm) goto label` (or `src` for the `_X` forms).
    pub fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, label: Label) {
        self.jumps.push((self.code.len(), label));
        self.push(code, dst, src, 0, imm);
    }

    /// `dst = <map>` (a map fd the loader turns into the map's address).
    pub fn load_map(&mut self, dst: u8, map: RawFd) {
        self.push(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map);
        self.push(0, 0, 0, 0, 0);
    }

    /// `r0 = &map[port − port_min]` for the port (host byte order) in register `port`, or a
    /// jump to `miss` when it lies outside `port_min..port_min + count` or the lookup fails:
    /// the per-port array both programs index. The key goes through the 4-byte stack slot at
    /// `key_slot` (below FP); clobbers `port` and R1–R5.
    pub fn lookup_port_entry(
        &mut self,
        port: u8,
        (port_min, count): (u16, u32),
        key_slot: i16,
        map: RawFd,
        miss: Label,
    ) {
        self.jump(JMP32_JLT_K, port, 0, i32::from(port_min), miss);
        let last = u32::from(port_min) + count - 1;
        self.jump(
            JMP32_JGT_K,
            port,
            0,
            i32::try_from(last).unwrap_or(i32::MAX),
            miss,
        );
        self.push(ALU32_SUB_K, port, 0, 0, i32::from(port_min));
        self.push(STX_W, FP, port, key_slot, 0);
        self.load_map(R1, map);
        self.push(ALU64_MOV_X, R2, FP, 0, 0);
        self.push(ALU64_ADD_K, R2, 0, 0, i32::from(key_slot));
        self.call(HELPER_MAP_LOOKUP_ELEM);
        self.jump(JMP_JEQ_K, R0, 0, 0, miss);
    }

    pub fn call(&mut self, helper: i32) {
        self.push(JMP_CALL, 0, 0, 0, helper);
    }

    /// `r0 = value; exit`
    pub fn exit_with(&mut self, value: i32) {
        self.push(ALU64_MOV_K, R0, 0, 0, value);
        self.push(JMP_EXIT, 0, 0, 0, 0);
    }

    /// The instructions with every jump resolved.
    ///
    /// # Panics
    /// On a jump to a label never bound or out of reach: a bug in the program's assembly.
    pub fn finish(mut self) -> Vec<Instruction> {
        for (at, label) in std::mem::take(&mut self.jumps) {
            let target = self.labels[label.0].expect("jump to an unbound label");
            let offset = i16::try_from(target as isize - at as isize - 1).expect("jump too far");
            let Instruction(word) = self.code[at];
            self.code[at] = Instruction((word & !0xffff_0000) | (u64::from(offset as u16) << 16));
        }
        self.code
    }
}

/// `union bpf_attr`, as large as any command here needs; unused bytes stay zero, as the
/// kernel requires.
#[repr(C, align(8))]
pub struct Attr(pub [u8; 128]);

impl Attr {
    pub fn new() -> Self {
        Attr([0; 128])
    }

    pub fn u32(mut self, offset: usize, value: u32) -> Self {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    pub fn u64(mut self, offset: usize, value: u64) -> Self {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    pub fn fd(self, offset: usize, fd: RawFd) -> io::Result<Self> {
        Ok(self.u32(offset, u32::try_from(fd).map_err(io::Error::other)?))
    }
}

pub fn bpf(command: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed buffer of the size passed; every pointer
    // stored in it (by the callers) points at memory that outlives this call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            std::mem::size_of::<Attr>(),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(result)
}

pub fn bpf_fd(command: libc::c_long, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(bpf(command, attr)?).map_err(io::Error::other)?;
    // SAFETY: the command returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A map with 4-byte keys.
pub fn create_map(map_type: u32, value_size: u32, entries: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new()
        .u32(0, map_type)
        .u32(4, 4)
        .u32(8, value_size)
        .u32(12, entries)
        .u32(16, flags);
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

pub fn update(map: &OwnedFd, key: u32, value: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new()
        .fd(0, map.as_raw_fd())?
        .u64(8, std::ptr::from_ref(&key) as u64)
        .u64(16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Loads a program of `program_type` (with `expected_attach_type`, 0 where the type has
/// none), named `name` (at most 15 bytes) in `bpftool prog` listings.
///
/// # Errors
/// `EPERM` without the capabilities; any other refusal carries the verifier's log.
pub fn load(
    program_type: u32,
    expected_attach_type: u32,
    name: &str,
    instructions: &[Instruction],
) -> io::Result<OwnedFd> {
    const LICENSE: &CStr = c"Dual MIT/GPL";
    let count = u32::try_from(instructions.len()).map_err(io::Error::other)?;
    let attr = || {
        let mut attr = Attr::new()
            .u32(0, program_type)
            .u32(4, count)
            .u64(8, instructions.as_ptr() as u64)
            .u64(16, LICENSE.as_ptr() as u64)
            .u32(68, expected_attach_type);
        let name = &name.as_bytes()[..name.len().min(15)];
        attr.0[48..48 + name.len()].copy_from_slice(name);
        attr
    };
    match bpf_fd(BPF_PROG_LOAD, &mut attr()) {
        Ok(fd) => Ok(fd),
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => Err(error),
        Err(error) => {
            // Load again with the verifier's log, so the error says why.
            let mut log = vec![0_u8; 256 * 1024];
            let mut retry = attr()
                .u32(24, 1)
                .u32(28, u32::try_from(log.len()).unwrap_or(0))
                .u64(32, log.as_mut_ptr() as u64);
            match bpf_fd(BPF_PROG_LOAD, &mut retry) {
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    Err(io::Error::new(
                        error.kind(),
                        format!("{error}; verifier: {}", text.trim()),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_pack_like_struct_bpf_insn() {
        // r2 = *(u32 *)(r6 + 60): code 0x61, dst 2, src 6, off 60
        assert_eq!(
            Instruction::new(LDX_W, R2, R6, 60, 0).0.to_le_bytes(),
            [0x61, 0x62, 60, 0, 0, 0, 0, 0]
        );
        // r2 += -4
        assert_eq!(
            Instruction::new(ALU64_ADD_K, R2, 0, 0, -4).0.to_le_bytes(),
            [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn jumps_land_on_their_labels_forward_and_back() {
        let mut program = Program::default();
        let start = program.label();
        let end = program.label();
        program.bind(start);
        program.push(ALU64_MOV_K, R0, 0, 0, 1); // 0
        program.jump(JMP_JEQ_K, R0, 0, 2, end); // 1 → 4
        program.push(ALU64_ADD_K, R0, 0, 0, 1); // 2
        program.jump(JMP_JNE_K, R0, 0, 9, start); // 3 → 0
        program.bind(end);
        program.exit_with(0); // 4, 5
        let code = program.finish();
        assert_eq!(code.len(), 6);
        assert_eq!(code[1].offset(), 2);
        assert_eq!(code[3].offset(), -4);
    }
}
