//! Receive steering: a BPF `sk_lookup` program (Linux 5.9+) that hands every UDP datagram for a
//! relay port this relay has in use to one shared socket, so the data plane reads the packets of
//! thousands of 50 pps streams with one `recvmmsg` per batch instead of one `epoll` report and
//! one receive per packet. The per-port sockets stay bound (they own the ports and send the
//! relayed packets, so each phone still sees the port its SDP names).
//!
//! The program (a few dozen instructions, assembled at run time: see [`crate::bpf`]) only
//! *selects a socket*; every check on the packet (latched source, counters) stays in user space.
//!
//! Loading needs `CAP_BPF` + `CAP_NET_ADMIN` (root); without them [`Steering::attach`] fails and
//! the data plane falls back to one socket per port. The program is attached through a BPF link
//! owned by this process, so it is detached when the relay exits, even by `kill -9`.
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::bpf::{
    ALU64_ADD_K, ALU64_MOV_K, ALU64_MOV_X, Attr, BPF_LINK_CREATE, BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_SOCKMAP, FP, HELPER_MAP_LOOKUP_ELEM, HELPER_SK_ASSIGN, HELPER_SK_RELEASE,
    Instruction, JMP_JEQ_K, JMP32_JEQ_K, JMP32_JNE_K, LDX_W, Program, R0, R1, R2, R3, R6, R7, ST_W,
    bpf_fd, create_map, update,
};

const BPF_PROG_TYPE_SK_LOOKUP: u32 = 30;
const BPF_SK_LOOKUP: u32 = 36;

/// `struct bpf_sk_lookup` field offsets (include/uapi/linux/bpf.h).
const CTX_FAMILY: i16 = 8;
const CTX_PROTOCOL: i16 = 12;
const CTX_LOCAL_IP4: i16 = 40;
const CTX_LOCAL_IP6: i16 = 44;
const CTX_LOCAL_PORT: i16 = 60;

const SK_PASS: i32 = 1;

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
    let mut program = Program::default();
    let pass = program.label();
    program.push(ALU64_MOV_X, R6, R1, 0, 0);
    program.push(LDX_W, R2, R6, CTX_PROTOCOL, 0);
    program.jump(JMP32_JNE_K, R2, 0, libc::IPPROTO_UDP, pass);
    // Context fields hold addresses in network byte order: compare with the same bytes read as
    // a native-endian u32.
    let word = |bytes: &[u8]| i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match address {
        IpAddr::V4(v4) if !v4.is_unspecified() => {
            program.push(LDX_W, R2, R6, CTX_FAMILY, 0);
            program.jump(JMP32_JNE_K, R2, 0, libc::AF_INET, pass);
            program.push(LDX_W, R2, R6, CTX_LOCAL_IP4, 0);
            program.jump(JMP32_JNE_K, R2, 0, word(&v4.octets()), pass);
        }
        IpAddr::V6(v6) if !v6.is_unspecified() => {
            program.push(LDX_W, R2, R6, CTX_FAMILY, 0);
            program.jump(JMP32_JNE_K, R2, 0, libc::AF_INET6, pass);
            let octets = v6.octets();
            for (index, chunk) in octets.chunks_exact(4).enumerate() {
                let offset = CTX_LOCAL_IP6 + 4 * i16::try_from(index).unwrap_or(0);
                program.push(LDX_W, R2, R6, offset, 0);
                program.jump(JMP32_JNE_K, R2, 0, word(chunk), pass);
            }
        }
        _ => {}
    }
    program.push(LDX_W, R2, R6, CTX_LOCAL_PORT, 0);
    program.lookup_port_entry(R2, (port_min, port_count), -4, ports, pass);
    program.push(LDX_W, R1, R0, 0, 0);
    program.jump(JMP32_JEQ_K, R1, 0, 0, pass);
    program.push(ST_W, FP, 0, -8, 0);
    program.load_map(R1, sockmap);
    program.push(ALU64_MOV_X, R2, FP, 0, 0);
    program.push(ALU64_ADD_K, R2, 0, 0, -8);
    program.call(HELPER_MAP_LOOKUP_ELEM);
    program.jump(JMP_JEQ_K, R0, 0, 0, pass);
    program.push(ALU64_MOV_X, R7, R0, 0, 0);
    // bpf_sk_assign(ctx, sk, 0): an error (a program before us chose already) leaves the
    // kernel's own choice, which is still a relay socket for our ports.
    program.push(ALU64_MOV_X, R1, R6, 0, 0);
    program.push(ALU64_MOV_X, R2, R7, 0, 0);
    program.push(ALU64_MOV_K, R3, 0, 0, 0);
    program.call(HELPER_SK_ASSIGN);
    // The sockmap lookup took a reference on the socket.
    program.push(ALU64_MOV_X, R1, R7, 0, 0);
    program.call(HELPER_SK_RELEASE);
    program.bind(pass);
    program.exit_with(SK_PASS);
    program.finish()
}

fn load(instructions: &[Instruction]) -> io::Result<OwnedFd> {
    crate::bpf::load(
        BPF_PROG_TYPE_SK_LOOKUP,
        BPF_SK_LOOKUP,
        "voxide_steer",
        instructions,
    )
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
        let ports = create_map(BPF_MAP_TYPE_ARRAY, 4, port_count, 0)?;
        let sockmap = create_map(BPF_MAP_TYPE_SOCKMAP, 8, 1, 0)?;
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
    use crate::bpf::{JMP32_JGT_K, JMP32_JLT_K};
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Duration;

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
