//! Receive steering: a BPF `sk_lookup` program (Linux 5.9+) that hands every UDP datagram for a
//! relay port this relay has in use to one shared socket, so the data plane reads the packets of
//! thousands of 50 pps streams with one `recvmmsg` per batch instead of one `epoll` report and
//! one receive per packet. The per-port sockets stay bound (they own the ports and send the
//! relayed packets, so each phone still sees the port its SDP names).
//!
//! The program is a few dozen instructions assembled here at run time: the BPF toolchains
//! (clang, bpf-linker with a nightly Rust) are not part of this build, and crates such as aya
//! load compiled objects rather than assemble them. The program only *selects a socket*; every
//! check on the packet (latched source, counters) stays in user space.
//!
//! Loading needs `CAP_BPF` + `CAP_NET_ADMIN` (root); without them [`Steering::attach`] fails and
//! the data plane falls back to one socket per port. The program is attached through a BPF link
//! owned by this process, so it is detached when the relay exits, even by `kill -9`.
#![allow(
    unsafe_code,
    reason = "the bpf(2) system call has no safe wrapper in std or libc; every block states its invariants"
)]

use std::ffi::CStr;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_SOCKMAP: u32 = 15;
const BPF_PROG_TYPE_SK_LOOKUP: u32 = 30;
const BPF_SK_LOOKUP: u32 = 36;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_SK_RELEASE: i32 = 86;
const HELPER_SK_ASSIGN: i32 = 124;

/// `struct bpf_sk_lookup` field offsets (include/uapi/linux/bpf.h).
const CTX_FAMILY: i16 = 8;
const CTX_PROTOCOL: i16 = 12;
const CTX_LOCAL_IP4: i16 = 40;
const CTX_LOCAL_IP6: i16 = 44;
const CTX_LOCAL_PORT: i16 = 60;

const SK_PASS: i32 = 1;

/// One BPF instruction, `struct bpf_insn` packed into its 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
struct Instruction(u64);

impl Instruction {
    const fn new(code: u8, dst: u8, src: u8, offset: i16, imm: i32) -> Self {
        Instruction(
            code as u64
                | (((dst & 0x0f) | ((src & 0x0f) << 4)) as u64) << 8
                | (offset as u16 as u64) << 16
                | (imm as u32 as u64) << 32,
        )
    }
}

// Opcode parts (class | size/op | mode/source).
const LDX_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ST_W: u8 = 0x02 | 0x60; // BPF_ST | BPF_MEM | BPF_W
const STX_W: u8 = 0x03 | 0x60; // BPF_STX | BPF_MEM | BPF_W
const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const ALU64_MOV_X: u8 = 0x07 | 0xb0 | 0x08;
const ALU64_MOV_K: u8 = 0x07 | 0xb0;
const ALU64_ADD_K: u8 = 0x07;
const ALU32_SUB_K: u8 = 0x04 | 0x10;
const JMP_JEQ_K: u8 = 0x05 | 0x10;
const JMP32_JEQ_K: u8 = 0x06 | 0x10;
const JMP32_JNE_K: u8 = 0x06 | 0x50;
const JMP32_JLT_K: u8 = 0x06 | 0xa0;
const JMP32_JGT_K: u8 = 0x06 | 0x20;
const JMP_CALL: u8 = 0x05 | 0x80;
const JMP_EXIT: u8 = 0x05 | 0x90;
const PSEUDO_MAP_FD: u8 = 1;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R6: u8 = 6;
const R7: u8 = 7;
const FP: u8 = 10;

/// A tiny assembler: conditional jumps to "pass" are patched once the program's end is known.
struct Program {
    code: Vec<Instruction>,
    to_pass: Vec<usize>,
}

impl Program {
    fn push(&mut self, code: u8, dst: u8, src: u8, offset: i16, imm: i32) {
        self.code
            .push(Instruction::new(code, dst, src, offset, imm));
    }

    /// `if (reg <op> imm) goto pass`
    fn jump_to_pass(&mut self, code: u8, reg: u8, imm: i32) {
        self.to_pass.push(self.code.len());
        self.push(code, reg, 0, 0, imm);
    }

    fn load_map(&mut self, reg: u8, map: RawFd) {
        self.push(LD_IMM64, reg, PSEUDO_MAP_FD, 0, map);
        self.push(0, 0, 0, 0, 0);
    }

    fn finish(mut self) -> Vec<Instruction> {
        let pass = self.code.len();
        self.push(ALU64_MOV_K, R0, 0, 0, SK_PASS);
        self.push(JMP_EXIT, 0, 0, 0, 0);
        for at in self.to_pass {
            let offset = i16::try_from(pass - at - 1).unwrap_or(i16::MAX);
            let Instruction(word) = self.code[at];
            self.code[at] = Instruction((word & !0xffff_0000) | (u64::from(offset as u16) << 16));
        }
        self.code
    }
}

/// The `sk_lookup` program: UDP to `address` (any local address when unspecified) and a port
/// whose entry in `ports` (indexed by port − `port_min`) is non-zero → the socket in `sockmap`
/// slot 0. Everything else passes on to the kernel's normal lookup.
fn assemble(
    address: IpAddr,
    port_min: u16,
    port_count: u32,
    ports: RawFd,
    sockmap: RawFd,
) -> Vec<Instruction> {
    let mut program = Program {
        code: Vec::with_capacity(48),
        to_pass: Vec::new(),
    };
    program.push(ALU64_MOV_X, R6, R1, 0, 0);
    program.push(LDX_W, R2, R6, CTX_PROTOCOL, 0);
    program.jump_to_pass(JMP32_JNE_K, R2, libc::IPPROTO_UDP);
    // Context fields hold addresses in network byte order: compare with the same bytes read as
    // a native-endian u32.
    let word = |bytes: &[u8]| i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match address {
        IpAddr::V4(v4) if !v4.is_unspecified() => {
            program.push(LDX_W, R2, R6, CTX_FAMILY, 0);
            program.jump_to_pass(JMP32_JNE_K, R2, libc::AF_INET);
            program.push(LDX_W, R2, R6, CTX_LOCAL_IP4, 0);
            program.jump_to_pass(JMP32_JNE_K, R2, word(&v4.octets()));
        }
        IpAddr::V6(v6) if !v6.is_unspecified() => {
            program.push(LDX_W, R2, R6, CTX_FAMILY, 0);
            program.jump_to_pass(JMP32_JNE_K, R2, libc::AF_INET6);
            let octets = v6.octets();
            for (index, chunk) in octets.chunks_exact(4).enumerate() {
                let offset = CTX_LOCAL_IP6 + 4 * i16::try_from(index).unwrap_or(0);
                program.push(LDX_W, R2, R6, offset, 0);
                program.jump_to_pass(JMP32_JNE_K, R2, word(chunk));
            }
        }
        _ => {}
    }
    program.push(LDX_W, R2, R6, CTX_LOCAL_PORT, 0);
    program.jump_to_pass(JMP32_JLT_K, R2, i32::from(port_min));
    let last = u32::from(port_min) + port_count - 1;
    program.jump_to_pass(JMP32_JGT_K, R2, i32::try_from(last).unwrap_or(i32::MAX));
    program.push(ALU32_SUB_K, R2, 0, 0, i32::from(port_min));
    program.push(STX_W, FP, R2, -4, 0);
    program.load_map(R1, ports);
    program.push(ALU64_MOV_X, R2, FP, 0, 0);
    program.push(ALU64_ADD_K, R2, 0, 0, -4);
    program.push(JMP_CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM);
    program.jump_to_pass(JMP_JEQ_K, R0, 0);
    program.push(LDX_W, R1, R0, 0, 0);
    program.jump_to_pass(JMP32_JEQ_K, R1, 0);
    program.push(ST_W, FP, 0, -8, 0);
    program.load_map(R1, sockmap);
    program.push(ALU64_MOV_X, R2, FP, 0, 0);
    program.push(ALU64_ADD_K, R2, 0, 0, -8);
    program.push(JMP_CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM);
    program.jump_to_pass(JMP_JEQ_K, R0, 0);
    program.push(ALU64_MOV_X, R7, R0, 0, 0);
    // bpf_sk_assign(ctx, sk, 0): an error (a program before us chose already) leaves the
    // kernel's own choice, which is still a relay socket for our ports.
    program.push(ALU64_MOV_X, R1, R6, 0, 0);
    program.push(ALU64_MOV_X, R2, R7, 0, 0);
    program.push(ALU64_MOV_K, R3, 0, 0, 0);
    program.push(JMP_CALL, 0, 0, 0, HELPER_SK_ASSIGN);
    // The sockmap lookup took a reference on the socket.
    program.push(ALU64_MOV_X, R1, R7, 0, 0);
    program.push(JMP_CALL, 0, 0, 0, HELPER_SK_RELEASE);
    program.finish()
}

/// `union bpf_attr`, as large as any command here needs; unused bytes stay zero, as the
/// kernel requires.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }

    fn u32(mut self, offset: usize, value: u32) -> Self {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64(mut self, offset: usize, value: u64) -> Self {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }
}

fn bpf(command: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
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

fn bpf_fd(command: libc::c_long, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(bpf(command, attr)?).map_err(io::Error::other)?;
    // SAFETY: the command returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn create_map(map_type: u32, value_size: u32, entries: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new()
        .u32(0, map_type)
        .u32(4, 4)
        .u32(8, value_size)
        .u32(12, entries);
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

fn update(map: &OwnedFd, key: u32, value: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new()
        .u32(0, u32::try_from(map.as_raw_fd()).map_err(io::Error::other)?)
        .u64(8, std::ptr::from_ref(&key) as u64)
        .u64(16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

fn load(instructions: &[Instruction]) -> io::Result<OwnedFd> {
    const LICENSE: &CStr = c"Dual MIT/GPL";
    let count = u32::try_from(instructions.len()).map_err(io::Error::other)?;
    let attr = || {
        Attr::new()
            .u32(0, BPF_PROG_TYPE_SK_LOOKUP)
            .u32(4, count)
            .u64(8, instructions.as_ptr() as u64)
            .u64(16, LICENSE.as_ptr() as u64)
            .u32(68, BPF_SK_LOOKUP)
    };
    let mut first = attr();
    first.0[48..48 + 12].copy_from_slice(b"voxide_steer");
    match bpf_fd(BPF_PROG_LOAD, &mut first) {
        Ok(fd) => Ok(fd),
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => Err(error),
        Err(error) => {
            // Load again with the verifier's log, so the error says why.
            let mut log = vec![0_u8; 64 * 1024];
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

/// An attached steering program and its maps. Dropping it detaches the program.
#[derive(Debug)]
pub struct Steering {
    // Field order is drop order: the link first, so the program is detached before its maps go.
    _link: OwnedFd,
    _program: OwnedFd,
    _sockmap: OwnedFd,
    ports: OwnedFd,
    port_min: u16,
    port_count: u32,
}

impl Steering {
    /// Attaches a program to this thread's network namespace that steers UDP datagrams for
    /// `address` and the ports `port_min..=port_max` marked with [`Steering::steer`] to
    /// `socket` (bound, unconnected UDP; a dual-stack IPv6 socket also takes IPv4).
    ///
    /// # Errors
    /// The bpf(2) error: `EPERM` without `CAP_BPF`/`CAP_NET_ADMIN`, `EINVAL` on a kernel
    /// without `sk_lookup`, with the verifier's log when it refuses the program.
    pub fn attach(
        socket: RawFd,
        address: IpAddr,
        port_min: u16,
        port_max: u16,
    ) -> io::Result<Self> {
        if port_max < port_min {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty port range",
            ));
        }
        let port_count = u32::from(port_max) - u32::from(port_min) + 1;
        let ports = create_map(BPF_MAP_TYPE_ARRAY, 4, port_count)?;
        let sockmap = create_map(BPF_MAP_TYPE_SOCKMAP, 8, 1)?;
        let socket = u64::try_from(socket).map_err(io::Error::other)?;
        update(&sockmap, 0, &socket.to_ne_bytes())?;
        let program = load(&assemble(
            address,
            port_min,
            port_count,
            ports.as_raw_fd(),
            sockmap.as_raw_fd(),
        ))?;
        let netns = std::fs::File::open("/proc/thread-self/ns/net")?;
        let mut attr = Attr::new()
            .u32(
                0,
                u32::try_from(program.as_raw_fd()).map_err(io::Error::other)?,
            )
            .u32(
                4,
                u32::try_from(netns.as_raw_fd()).map_err(io::Error::other)?,
            )
            .u32(8, BPF_SK_LOOKUP);
        let link = bpf_fd(BPF_LINK_CREATE, &mut attr)?;
        Ok(Steering {
            _link: link,
            _program: program,
            _sockmap: sockmap,
            ports,
            port_min,
            port_count,
        })
    }

    /// Starts (`true`) or stops steering datagrams for `port`.
    ///
    /// # Errors
    /// `InvalidInput` for a port outside the range; the bpf(2) error.
    pub fn steer(&self, port: u16, on: bool) -> io::Result<()> {
        let index = u32::from(port.wrapping_sub(self.port_min));
        if port < self.port_min || index >= self.port_count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("port {port} outside the steered range"),
            ));
        }
        update(&self.ports, index, &u32::from(on).to_ne_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Duration;

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
    fn every_early_exit_lands_on_pass() {
        let code = assemble(IpAddr::V4(Ipv4Addr::LOCALHOST), 30000, 10, 3, 4);
        let pass = code.len() - 2;
        assert_eq!(code[pass], Instruction::new(ALU64_MOV_K, R0, 0, 0, SK_PASS));
        let jumps: Vec<usize> = code
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                matches!(
                    (i.0 & 0xff) as u8,
                    JMP32_JNE_K | JMP32_JLT_K | JMP32_JGT_K | JMP_JEQ_K | JMP32_JEQ_K
                )
            })
            .map(|(at, i)| at + 1 + usize::from(((i.0 >> 16) & 0xffff) as u16))
            .collect();
        assert!(!jumps.is_empty());
        assert!(
            jumps.iter().all(|&target| target == pass),
            "{jumps:?} vs {pass}"
        );
    }

    /// Needs CAP_BPF + CAP_NET_ADMIN: skipped (with a message) when the kernel refuses.
    #[test]
    fn steers_marked_ports_to_the_shared_socket() {
        let shared = UdpSocket::bind("127.0.0.1:0").unwrap();
        let owner = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = owner.local_addr().unwrap().port();
        let steering = match Steering::attach(
            shared.as_raw_fd(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            port,
        ) {
            Ok(steering) => steering,
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("skipped: no permission to load BPF ({error})");
                return;
            }
            Err(error) => panic!("attach: {error}"),
        };
        for socket in [&shared, &owner] {
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buffer = [0_u8; 16];
        // Not marked yet: the owner gets it.
        sender.send_to(b"one", owner.local_addr().unwrap()).unwrap();
        assert_eq!(owner.recv(&mut buffer).unwrap(), 3);
        steering.steer(port, true).unwrap();
        sender.send_to(b"two", owner.local_addr().unwrap()).unwrap();
        let (len, from) = shared.recv_from(&mut buffer).unwrap();
        assert_eq!(
            (&buffer[..len], from),
            (&b"two"[..], sender.local_addr().unwrap())
        );
        assert!(
            owner.recv(&mut buffer).is_err(),
            "the owner must not see a steered packet"
        );
        steering.steer(port, false).unwrap();
        sender
            .send_to(b"three", owner.local_addr().unwrap())
            .unwrap();
        assert_eq!(owner.recv(&mut buffer).unwrap(), 5);
        steering.steer(port, true).unwrap();
        drop(steering);
        // Detached with the link: the owner gets packets again.
        sender
            .send_to(b"four", owner.local_addr().unwrap())
            .unwrap();
        assert_eq!(owner.recv(&mut buffer).unwrap(), 4);
        assert!(steering_range_error());
    }

    fn steering_range_error() -> bool {
        let shared = UdpSocket::bind("127.0.0.1:0").unwrap();
        match Steering::attach(
            shared.as_raw_fd(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            40000,
            40001,
        ) {
            Ok(steering) => {
                steering.steer(39999, true).unwrap_err().kind() == io::ErrorKind::InvalidInput
                    && steering.steer(40002, true).is_err()
            }
            Err(_) => true,
        }
    }
}
