//! In-kernel forwarding: a BPF program on the tc ingress hook (tcx, Linux 6.6+) of every
//! interface relays the packets of a stream to the relay's address once user space has latched it,
//! so a relayed packet costs no system call, no socket queue and no copy to user space — the job
//! rtpengine's `xt_RTPENGINE` kernel module does, without an out-of-tree module.
//!
//! User space stays in charge: the first packets of every stream go through the data plane as
//! before (latching, strict source); once a leg is latched and its partner's target is known the
//! data plane writes a route into the [`ForwardingTable`] (a memory-mapped BPF array indexed by
//! relay port − `port_min`). For a packet to a port with an active route *from the latched
//! source* the program rewrites addresses, ports and TOS byte, fixes the IP and UDP checksums,
//! counts the packet and either hands it on for local delivery (a receiver on this host, packet
//! from loopback) or redirects it out of the interface the routing table picked for the
//! receiver when the route was installed ([`crate::netlink`]), filling in the neighbour through
//! the kernel's tables (`bpf_redirect_neigh`: no IP forwarding needed). Anything else —
//! another source, IPv6, fragments, a port without a route, no neighbour entry yet — passes
//! untouched to the relay's sockets, where user space handles (and counts) it as before.
//!
//! Loading needs `CAP_BPF` + `CAP_NET_ADMIN`; the program is attached through BPF links owned by
//! this process, so it goes away with the relay, even on `kill -9`.
#![allow(
    unsafe_code,
    reason = "the route table is a memory-mapped BPF map shared with the kernel; every block states its invariants"
)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use crate::bpf::{
    ALU32_TO_BE, ALU64_ADD_K, ALU64_AND_K, ALU64_LSH_K, ALU64_MOV_K, ALU64_MOV_X, ALU64_OR_X,
    ALU64_SUB_K, ATOMIC_DW, Attr, BPF_F_MMAPABLE, BPF_LINK_CREATE, BPF_MAP_TYPE_ARRAY, FP,
    HELPER_CSUM_DIFF, HELPER_L3_CSUM_REPLACE, HELPER_L4_CSUM_REPLACE, HELPER_REDIRECT_NEIGH,
    HELPER_SKB_STORE_BYTES, Instruction, JMP_EXIT, JMP_JEQ_K, JMP_JGT_X, JMP_JNE_K, JMP_JNE_X,
    JMP32_JNE_K, LDX_B, LDX_H, LDX_W, Program, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, STX_W,
    bpf_fd, create_map,
};
use crate::netlink::{NextHop, RouteSocket};

const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;

/// `struct __sk_buff` field offsets (include/uapi/linux/bpf.h).
const SKB_LEN: i16 = 0;
const SKB_IFINDEX: i16 = 40;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

/// tcx verdicts: on to the next program / the stack, delivered as is, redirected.
const TCX_NEXT: i32 = -1;
const TCX_PASS: i32 = 0;

const LOOPBACK_IFINDEX: i32 = 1;

/// `bpf_l4_csum_replace` flags.
const CSUM_PSEUDO_HEADER: i32 = 1 << 4;
const CSUM_MANGLED_0: i32 = 1 << 5;

/// Offsets in an Ethernet + IPv4 (no options) + UDP frame as tc sees it.
const ETH_TYPE: i16 = 12;
const IP: i16 = 14;
const IP_FRAGMENT: i16 = IP + 6;
const IP_PROTOCOL: i16 = IP + 9;
const IP_CHECKSUM: i32 = IP as i32 + 10;
const IP_SOURCE: i16 = IP + 12;
const IP_DESTINATION: i16 = IP + 16;
const UDP_SOURCE: i16 = IP + 20;
const UDP_DESTINATION: i16 = IP + 22;
const UDP_CHECKSUM: i32 = IP as i32 + 26;
const HEADERS: i32 = IP as i32 + 28;

/// One route, as the program reads it. Address and port fields hold network byte order (the
/// bytes as they are on the wire); everything is atomic because the kernel reads it while user
/// space writes.
#[repr(C)]
struct RawRoute {
    active: AtomicU32,
    sender_address: AtomicU32,
    sender_port: AtomicU16,
    tos: AtomicU8,
    /// 1: the receiver is on this host (delivered in place); 0: out of `egress`.
    local: AtomicU8,
    // These four are laid out like bytes 12..24 of the IPv4 + UDP headers they replace.
    source_address: AtomicU32,
    destination_address: AtomicU32,
    source_port: AtomicU16,
    destination_port: AtomicU16,
    egress: AtomicU32,
    _pad: AtomicU32,
    packets: AtomicU64,
    bytes: AtomicU64,
}

const ROUTE_SIZE: usize = std::mem::size_of::<RawRoute>();
const _: () = assert!(ROUTE_SIZE == 48);
const ROUTE_ACTIVE: i16 = 0;
const ROUTE_SENDER_ADDRESS: i16 = 4;
const ROUTE_SENDER_PORT: i16 = 8;
const ROUTE_TOS: i16 = 10;
const ROUTE_LOCAL: i16 = 11;
const ROUTE_REWRITE: i16 = 12;
const ROUTE_SOURCE_ADDRESS: i16 = 12;
#[cfg(test)]
const ROUTE_DESTINATION_ADDRESS: i16 = 16;
const ROUTE_PORTS: i16 = 20;
#[cfg(test)]
const ROUTE_DESTINATION_PORT: i16 = 22;
const ROUTE_EGRESS: i16 = 24;
const ROUTE_PACKETS: i16 = 32;
const ROUTE_BYTES: i16 = 40;

/// Where one leg's packets go once the kernel relays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The latched sender: packets from anywhere else stay with user space.
    pub sender: SocketAddrV4,
    /// The relay's own address and port facing the receiver (the partner leg's socket).
    pub source: SocketAddrV4,
    /// The receiver.
    pub destination: SocketAddrV4,
}

fn network_u32(address: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(address.octets())
}

fn network_u16(port: u16) -> u16 {
    u16::from_ne_bytes(port.to_be_bytes())
}

/// The routes, indexed by relay port − `port_min`, shared with the program.
#[derive(Debug)]
pub struct ForwardingTable {
    _map: OwnedFd,
    routes: *mut RawRoute,
    mapped: usize,
    port_min: u16,
    count: u32,
    /// Asked for each route's egress interface (and whether its receiver is on this host), in
    /// the namespace the table was made in.
    next_hops: RouteSocket,
}

// SAFETY: the mapping is owned by the table and lives as long as it; every access goes through
// atomics, so sharing it between threads is sound.
unsafe impl Send for ForwardingTable {}
// SAFETY: as above.
unsafe impl Sync for ForwardingTable {}

impl Drop for ForwardingTable {
    fn drop(&mut self) {
        // SAFETY: `routes`/`mapped` are the mapping made in `new`, unmapped only here.
        unsafe {
            libc::munmap(self.routes.cast(), self.mapped);
        }
    }
}

impl ForwardingTable {
    fn new(port_min: u16, count: u32) -> io::Result<Self> {
        let next_hops = RouteSocket::open()?;
        let map = create_map(
            BPF_MAP_TYPE_ARRAY,
            u32::try_from(ROUTE_SIZE).map_err(io::Error::other)?,
            count,
            BPF_F_MMAPABLE,
        )?;
        let page = 4096;
        let mapped = (count as usize * ROUTE_SIZE).div_ceil(page) * page;
        // SAFETY: mapping a BPF array map created with BPF_F_MMAPABLE, at offset 0 and no larger
        // than its (page-rounded) value area; the kernel zero-fills new maps.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ForwardingTable {
            _map: map,
            routes: mapping.cast(),
            mapped,
            port_min,
            count,
            next_hops,
        })
    }

    fn route(&self, port: u16) -> Option<&RawRoute> {
        let index = u32::from(port.checked_sub(self.port_min)?);
        if index >= self.count {
            return None;
        }
        // SAFETY: `index < count`, so the element lies inside the mapping, which lives as long
        // as `self`; elements are 48 bytes (8-aligned) from a page-aligned start.
        Some(unsafe { &*self.routes.add(index as usize) })
    }

    /// Makes the kernel relay packets arriving at relay `port` out of the interface the
    /// routing table picks for the receiver (or locally, for a receiver on this host); counters
    /// start at zero. False for a port outside the table or a receiver without a route: the
    /// stream then stays with user space.
    pub fn install(&self, port: u16, route: Route) -> bool {
        match self
            .next_hops
            .next_hop(*route.source.ip(), *route.destination.ip())
        {
            Ok(hop) => self.install_via(port, route, hop),
            Err(error) => {
                tracing::debug!(%error, ?route, "no route for kernel forwarding; stays in user space");
                false
            }
        }
    }

    /// [`install`](Self::install) with the next hop already known.
    pub fn install_via(&self, port: u16, route: Route, hop: NextHop) -> bool {
        let Some(raw) = self.route(port) else {
            return false;
        };
        raw.active.store(0, Ordering::Release);
        raw.sender_address
            .store(network_u32(*route.sender.ip()), Ordering::Relaxed);
        raw.sender_port
            .store(network_u16(route.sender.port()), Ordering::Relaxed);
        raw.source_address
            .store(network_u32(*route.source.ip()), Ordering::Relaxed);
        raw.destination_address
            .store(network_u32(*route.destination.ip()), Ordering::Relaxed);
        raw.source_port
            .store(network_u16(route.source.port()), Ordering::Relaxed);
        raw.destination_port
            .store(network_u16(route.destination.port()), Ordering::Relaxed);
        let (local, egress) = match hop {
            NextHop::Local => (true, 0),
            NextHop::Interface(interface) => (false, interface),
        };
        raw.local.store(u8::from(local), Ordering::Relaxed);
        raw.egress.store(egress, Ordering::Relaxed);
        raw.packets.store(0, Ordering::Relaxed);
        raw.bytes.store(0, Ordering::Relaxed);
        raw.active.store(1, Ordering::Release);
        true
    }

    /// Hands `port` back to user space.
    pub fn remove(&self, port: u16) {
        if let Some(raw) = self.route(port) {
            raw.active.store(0, Ordering::Release);
        }
    }

    /// Packets and bytes (UDP payload) the kernel relayed for `port` since its route was
    /// installed.
    pub fn counters(&self, port: u16) -> (u64, u64) {
        self.route(port).map_or((0, 0), |raw| {
            (
                raw.packets.load(Ordering::Relaxed),
                raw.bytes.load(Ordering::Relaxed),
            )
        })
    }

    fn set_tos(&self, tos: u8) {
        for index in 0..self.count {
            // SAFETY: `index < count`: inside the mapping (see `route`).
            let raw = unsafe { &*self.routes.add(index as usize) };
            raw.tos.store(tos, Ordering::Relaxed);
        }
    }
}

// Stack layout of the program (offsets from r10).
const STACK_KEY: i16 = -8;
/// Old IP source, IP destination, UDP ports: 12 bytes.
const STACK_OLD: i16 = -24;
const STACK_OLD_PORTS: i16 = -16;
/// Old and new first word of the IP header (version/IHL, TOS, total length).
const STACK_OLD_TOS_WORD: i16 = -32;
const STACK_NEW_TOS_WORD: i16 = -28;
/// The tc program for UDP to `address` on ports `port_min..port_min+count` with routes in
/// `routes` (see the module documentation).
fn assemble(address: Ipv4Addr, port_min: u16, count: u32, routes: RawFd) -> Vec<Instruction> {
    let mut p = Program::default();
    let next = p.label();
    let rewrite = p.label();
    let deliver = p.label();
    let word = i32::from_ne_bytes(address.octets());

    // r6 = skb; r2 = data, r3 = data_end; the headers must be in the linear part.
    let packet_bounds = |p: &mut Program| {
        p.push(LDX_W, R2, R6, SKB_DATA, 0);
        p.push(LDX_W, R3, R6, SKB_DATA_END, 0);
        p.push(ALU64_MOV_X, R4, R2, 0, 0);
        p.push(ALU64_ADD_K, R4, 0, 0, HEADERS);
        p.jump(JMP_JGT_X, R4, R3, 0, next);
    };
    p.push(ALU64_MOV_X, R6, R1, 0, 0);
    packet_bounds(&mut p);
    // IPv4 (0x0800 read little-endian), no options, UDP, not a fragment.
    p.push(LDX_H, R4, R2, ETH_TYPE, 0);
    p.jump(JMP_JNE_K, R4, 0, 0x0008, next);
    p.push(LDX_B, R4, R2, IP, 0);
    p.jump(JMP_JNE_K, R4, 0, 0x45, next);
    p.push(LDX_B, R4, R2, IP_PROTOCOL, 0);
    p.jump(JMP_JNE_K, R4, 0, libc::IPPROTO_UDP, next);
    p.push(LDX_H, R4, R2, IP_FRAGMENT, 0);
    // More-fragments flag and offset, as the little-endian load sees them.
    p.push(ALU64_AND_K, R4, 0, 0, 0xff3f);
    p.jump(JMP_JNE_K, R4, 0, 0, next);
    p.push(LDX_W, R4, R2, IP_DESTINATION, 0);
    p.jump(JMP32_JNE_K, R4, 0, word, next);
    // Route index = destination port − port_min.
    p.push(LDX_H, R4, R2, UDP_DESTINATION, 0);
    p.push(ALU32_TO_BE, R4, 0, 0, 16);
    p.lookup_port_entry(R4, (port_min, count), STACK_KEY, routes, next);
    p.push(ALU64_MOV_X, R7, R0, 0, 0);
    p.push(LDX_W, R4, R7, ROUTE_ACTIVE, 0);
    p.jump(JMP_JEQ_K, R4, 0, 0, next);
    // Helper calls clobber r1-r5: the packet pointers again.
    packet_bounds(&mut p);
    // Strict source: only the latched sender.
    p.push(LDX_W, R4, R2, IP_SOURCE, 0);
    p.push(LDX_W, R5, R7, ROUTE_SENDER_ADDRESS, 0);
    p.jump(JMP_JNE_X, R4, R5, 0, next);
    p.push(LDX_H, R4, R2, UDP_SOURCE, 0);
    p.push(LDX_H, R5, R7, ROUTE_SENDER_PORT, 0);
    p.jump(JMP_JNE_X, R4, R5, 0, next);
    // The header bytes about to change, for the checksum updates.
    p.push(LDX_W, R4, R2, IP_SOURCE, 0);
    p.push(STX_W, FP, R4, STACK_OLD, 0);
    p.push(LDX_W, R4, R2, IP_DESTINATION, 0);
    p.push(STX_W, FP, R4, STACK_OLD + 4, 0);
    p.push(LDX_W, R4, R2, UDP_SOURCE, 0);
    p.push(STX_W, FP, R4, STACK_OLD_PORTS, 0);
    p.push(LDX_W, R4, R2, IP, 0);
    p.push(STX_W, FP, R4, STACK_OLD_TOS_WORD, 0);
    p.push(LDX_B, R5, R7, ROUTE_TOS, 0);
    p.push(ALU64_LSH_K, R5, 0, 0, 8);
    p.push(ALU64_AND_K, R4, 0, 0, 0xffff_00ff_u32 as i32);
    p.push(ALU64_OR_X, R4, R5, 0, 0);
    p.push(STX_W, FP, R4, STACK_NEW_TOS_WORD, 0);
    // A receiver on this host gets the packet in place, but only when it came in on loopback (a
    // local source address arriving on another interface would be dropped as a martian).
    p.push(LDX_B, R8, R7, ROUTE_LOCAL, 0);
    p.jump(JMP_JEQ_K, R8, 0, 0, rewrite);
    p.push(LDX_W, R4, R6, SKB_IFINDEX, 0);
    p.jump(JMP_JNE_K, R4, 0, LOOPBACK_IFINDEX, next);

    p.bind(rewrite);
    // Counted here: from now on the packet is relayed.
    p.push(ALU64_MOV_K, R4, 0, 0, 1);
    p.push(ATOMIC_DW, R7, R4, ROUTE_PACKETS, 0);
    p.push(LDX_W, R4, R6, SKB_LEN, 0);
    p.push(ALU64_SUB_K, R4, 0, 0, HEADERS);
    p.push(ATOMIC_DW, R7, R4, ROUTE_BYTES, 0);
    // UDP checksum: the addresses through the pseudo header, the ports directly.
    let csum_diff = |p: &mut Program, from: i16, to_base: u8, to: i16, size: i32, seed: u8| {
        p.push(ALU64_MOV_X, R1, FP, 0, 0);
        p.push(ALU64_ADD_K, R1, 0, 0, i32::from(from));
        p.push(ALU64_MOV_K, R2, 0, 0, size);
        p.push(ALU64_MOV_X, R3, to_base, 0, 0);
        p.push(ALU64_ADD_K, R3, 0, 0, i32::from(to));
        p.push(ALU64_MOV_K, R4, 0, 0, size);
        if seed == 0 {
            p.push(ALU64_MOV_K, R5, 0, 0, 0);
        } else {
            p.push(ALU64_MOV_X, R5, seed, 0, 0);
        }
        p.call(HELPER_CSUM_DIFF);
    };
    let csum_replace = |p: &mut Program, helper: i32, offset: i32, flags: i32| {
        p.push(ALU64_MOV_X, R4, R0, 0, 0);
        p.push(ALU64_MOV_X, R1, R6, 0, 0);
        p.push(ALU64_MOV_K, R2, 0, 0, offset);
        p.push(ALU64_MOV_K, R3, 0, 0, 0);
        p.push(ALU64_MOV_K, R5, 0, 0, flags);
        p.call(helper);
    };
    csum_diff(&mut p, STACK_OLD, R7, ROUTE_SOURCE_ADDRESS, 8, 0);
    p.push(ALU64_MOV_X, R9, R0, 0, 0);
    csum_replace(
        &mut p,
        HELPER_L4_CSUM_REPLACE,
        UDP_CHECKSUM,
        CSUM_PSEUDO_HEADER | CSUM_MANGLED_0,
    );
    csum_diff(&mut p, STACK_OLD_PORTS, R7, ROUTE_PORTS, 4, 0);
    csum_replace(&mut p, HELPER_L4_CSUM_REPLACE, UDP_CHECKSUM, CSUM_MANGLED_0);
    // IP header checksum: the addresses (diff in r9) and the TOS byte.
    csum_diff(&mut p, STACK_OLD_TOS_WORD, FP, STACK_NEW_TOS_WORD, 4, R9);
    csum_replace(&mut p, HELPER_L3_CSUM_REPLACE, IP_CHECKSUM, 0);
    let store = |p: &mut Program, offset: i16, base: u8, from: i16, size: i32| {
        p.push(ALU64_MOV_X, R1, R6, 0, 0);
        p.push(ALU64_MOV_K, R2, 0, 0, i32::from(offset));
        p.push(ALU64_MOV_X, R3, base, 0, 0);
        p.push(ALU64_ADD_K, R3, 0, 0, i32::from(from));
        p.push(ALU64_MOV_K, R4, 0, 0, size);
        p.push(ALU64_MOV_K, R5, 0, 0, 0);
        p.call(HELPER_SKB_STORE_BYTES);
    };
    store(&mut p, IP_SOURCE, R7, ROUTE_REWRITE, 12);
    store(&mut p, IP, FP, STACK_NEW_TOS_WORD, 4);
    p.jump(JMP_JNE_K, R8, 0, 0, deliver);
    // Out of the egress interface; the kernel routes it and fills in the neighbour's MAC
    // (resolving it first if need be), as for a packet the relay sent itself.
    p.push(LDX_W, R1, R7, ROUTE_EGRESS, 0);
    p.push(ALU64_MOV_K, R2, 0, 0, 0);
    p.push(ALU64_MOV_K, R3, 0, 0, 0);
    p.push(ALU64_MOV_K, R4, 0, 0, 0);
    p.call(HELPER_REDIRECT_NEIGH);
    p.push(JMP_EXIT, 0, 0, 0, 0);

    p.bind(deliver);
    p.exit_with(TCX_PASS);
    p.bind(next);
    p.exit_with(TCX_NEXT);
    p.finish()
}

/// Every interface of this network namespace, by index.
fn all_interfaces() -> io::Result<Vec<u32>> {
    // SAFETY: if_nameindex returns an array ending in a zero entry, freed below.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cursor = list;
    // SAFETY: entries up to the terminating zero one belong to the array.
    while unsafe { (*cursor).if_index } != 0 {
        // SAFETY: as above; `cursor` has not passed the terminator.
        found.push(unsafe { (*cursor).if_index });
        // SAFETY: the next entry exists, at worst the terminator.
        cursor = unsafe { cursor.add(1) };
    }
    // SAFETY: the array from if_nameindex above, freed once.
    unsafe { libc::if_freenameindex(list) };
    Ok(found)
}

/// The program and its route table, not attached anywhere yet.
fn load_program(
    address: Ipv4Addr,
    port_min: u16,
    port_max: u16,
    tos: u8,
) -> io::Result<(ForwardingTable, OwnedFd)> {
    let count = u32::from(port_max) - u32::from(port_min) + 1;
    let table = ForwardingTable::new(port_min, count)?;
    table.set_tos(tos);
    let program = crate::bpf::load(
        BPF_PROG_TYPE_SCHED_CLS,
        0,
        "voxide_forward",
        &assemble(address, port_min, count, table._map.as_raw_fd()),
    )?;
    Ok((table, program))
}

/// The attached program and its route table. Dropping it detaches the program.
#[derive(Debug)]
pub struct KernelForwarding {
    // Field order is drop order: links first, so the program is detached before its map goes.
    _links: Vec<OwnedFd>,
    _program: OwnedFd,
    table: Arc<ForwardingTable>,
}

impl KernelForwarding {
    /// Attaches the program to the tc ingress of every interface (as they are now), for
    /// `address` (which one of them must hold) and relay ports `port_min..=port_max`, marking
    /// relayed packets with `tos`.
    ///
    /// # Errors
    /// `EPERM` without the capabilities, `EINVAL` on a kernel without tcx, with the verifier's
    /// log when it refuses the program; `AddrNotAvailable` when no interface holds `address`.
    pub fn attach(address: Ipv4Addr, port_min: u16, port_max: u16, tos: u8) -> io::Result<Self> {
        if port_max < port_min {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty port range",
            ));
        }
        // Every interface, not only the one holding the address: a phone routed through
        // another link sends from there (weak host model), and senders on this host come in
        // on loopback. The program lets anything not addressed to the relay by at once.
        let interfaces = all_interfaces()?;
        let (table, program) = load_program(address, port_min, port_max, tos)?;
        // The routing table knows whether `address` is this host's (all of 127/8 is).
        if !matches!(
            table.next_hops.next_hop(address, address),
            Ok(NextHop::Local)
        ) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("no interface holds {address}"),
            ));
        }
        let mut links = Vec::with_capacity(interfaces.len());
        for interface in interfaces {
            let mut attr = Attr::new()
                .fd(0, program.as_raw_fd())?
                .u32(4, interface)
                .u32(8, BPF_TCX_INGRESS);
            match bpf_fd(BPF_LINK_CREATE, &mut attr) {
                Ok(link) => links.push(link),
                // An interface removed since the list was read (a veth going away): nothing
                // to relay on it, and no reason to give up the others.
                Err(error) if error.raw_os_error() == Some(libc::ENODEV) => {
                    tracing::debug!(
                        interface,
                        "interface gone before kernel forwarding attached"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(KernelForwarding {
            _links: links,
            _program: program,
            table: Arc::new(table),
        })
    }

    /// The route table, for the data plane (writes) and the control side (counters).
    pub fn table(&self) -> &Arc<ForwardingTable> {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn v4(socket: &UdpSocket) -> SocketAddrV4 {
        match socket.local_addr().unwrap() {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
        }
    }

    #[test]
    fn routes_lay_out_like_the_program_reads_them() {
        let table_entry = RawRoute {
            active: AtomicU32::new(0),
            sender_address: AtomicU32::new(0),
            sender_port: AtomicU16::new(0),
            tos: AtomicU8::new(0),
            local: AtomicU8::new(0),
            source_address: AtomicU32::new(0),
            destination_address: AtomicU32::new(0),
            source_port: AtomicU16::new(0),
            destination_port: AtomicU16::new(0),
            egress: AtomicU32::new(0),
            _pad: AtomicU32::new(0),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let base = std::ptr::from_ref(&table_entry) as usize;
        let at = |field: *const u8| (field as usize - base) as i16;
        assert_eq!(at(table_entry.active.as_ptr().cast()), ROUTE_ACTIVE);
        assert_eq!(
            at(table_entry.sender_port.as_ptr().cast()),
            ROUTE_SENDER_PORT
        );
        assert_eq!(at(table_entry.tos.as_ptr()), ROUTE_TOS);
        assert_eq!(
            at(table_entry.destination_address.as_ptr().cast()),
            ROUTE_DESTINATION_ADDRESS
        );
        assert_eq!(
            at(table_entry.destination_port.as_ptr().cast()),
            ROUTE_DESTINATION_PORT
        );
        assert_eq!(at(table_entry.local.as_ptr()), ROUTE_LOCAL);
        assert_eq!(at(table_entry.egress.as_ptr().cast()), ROUTE_EGRESS);
        assert_eq!(at(table_entry.packets.as_ptr().cast()), ROUTE_PACKETS);
        assert_eq!(at(table_entry.bytes.as_ptr().cast()), ROUTE_BYTES);
    }

    #[test]
    fn the_program_fits_the_stack_and_every_jump_stays_inside() {
        let code = assemble(Ipv4Addr::LOCALHOST, 30000, 10000, 3);
        for (at, instruction) in code.iter().enumerate() {
            let class = instruction.code() & 0x07;
            if (class == 0x05 || class == 0x06)
                && !matches!(instruction.code(), crate::bpf::JMP_CALL | JMP_EXIT)
            {
                let target = at as isize + 1 + isize::from(instruction.offset());
                assert!((0..code.len() as isize).contains(&target), "jump at {at}");
            }
        }
    }

    /// Needs CAP_BPF + CAP_NET_ADMIN and a kernel with tcx: skipped (with a message) otherwise.
    #[test]
    fn the_kernel_relays_a_routed_stream_and_leaves_the_rest_to_user_space() {
        let relay_in = UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay_out = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = relay_in.local_addr().unwrap().port();
        let forwarding = match KernelForwarding::attach(Ipv4Addr::LOCALHOST, port, port, 184) {
            Ok(forwarding) => forwarding,
            Err(error) if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
                eprintln!("skipped: cannot attach a tcx program ({error})");
                return;
            }
            Err(error) => panic!("attach: {error}"),
        };
        // An address this host does not hold is refused by name; any of 127/8 is held.
        let foreign = KernelForwarding::attach(Ipv4Addr::new(192, 0, 2, 1), port, port, 184)
            .expect_err("192.0.2.1 is not ours");
        assert_eq!(foreign.kind(), io::ErrorKind::AddrNotAvailable, "{foreign}");
        assert!(KernelForwarding::attach(Ipv4Addr::new(127, 0, 0, 63), port, port, 184).is_ok());
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&receiver)
            .set_recv_tos_v4(true)
            .unwrap();
        for socket in [&relay_in, &receiver] {
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        let table = forwarding.table();
        let to_relay = relay_in.local_addr().unwrap();
        let mut buffer = [0_u8; 256];

        // No route yet: user space gets it.
        sender.send_to(b"first", to_relay).unwrap();
        assert_eq!(relay_in.recv(&mut buffer).unwrap(), 5);

        assert!(table.install(
            port,
            Route {
                sender: v4(&sender),
                source: v4(&relay_out),
                destination: v4(&receiver),
            }
        ));
        let payload = [7_u8; 160];
        for _ in 0..3 {
            sender.send_to(&payload, to_relay).unwrap();
            let (len, from, tos) =
                crate::fastpath::receive_with_tos(receiver.as_raw_fd(), &mut buffer).unwrap();
            assert_eq!(&buffer[..len], &payload[..]);
            assert_eq!(from, Some(relay_out.local_addr().unwrap()));
            assert_eq!(tos, Some(184));
        }
        assert_eq!(table.counters(port), (3, 3 * 160));
        assert!(
            relay_in.recv(&mut buffer).is_err(),
            "user space saw a relayed packet"
        );

        // Strict source: another sender stays with user space, unrewritten.
        intruder.send_to(b"inject", to_relay).unwrap();
        let (len, from) = relay_in.recv_from(&mut buffer).unwrap();
        assert_eq!(
            (&buffer[..len], from),
            (&b"inject"[..], intruder.local_addr().unwrap())
        );
        assert_eq!(table.counters(port), (3, 480));

        table.remove(port);
        sender.send_to(b"after", to_relay).unwrap();
        assert_eq!(relay_in.recv(&mut buffer).unwrap(), 5);
        receiver
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(receiver.recv(&mut buffer).is_err());
        assert!(!table.install(
            port.wrapping_add(1),
            Route {
                sender: v4(&sender),
                source: v4(&relay_out),
                destination: v4(&receiver),
            }
        ));
    }

    /// Root only (network namespaces, BPF, ethtool): skipped otherwise.
    #[test]
    fn the_kernel_sends_a_stream_out_to_a_remote_receiver_with_valid_checksums() {
        let lab = match RemoteLab::create() {
            Ok(lab) => lab,
            Err(error) if !e2e_tests::is_root() => {
                eprintln!("skipped: needs root ({error})");
                return;
            }
            Err(error) => panic!("{error}"),
        };
        // The relay's sockets and program live in the relay namespace, the phones in theirs.
        let (forwarding, relay_in, relay_out) = lab.in_namespace(&lab.relay, || {
            let relay_in = UdpSocket::bind((lab.relay_ip, 0)).unwrap();
            let relay_out = UdpSocket::bind((lab.relay_ip, 0)).unwrap();
            let port = relay_in.local_addr().unwrap().port();
            let forwarding = KernelForwarding::attach(lab.relay_ip, port, port, 184)
                .expect("attach in the relay namespace");
            (forwarding, relay_in, relay_out)
        });
        let (sender, receiver, capture) = lab.in_namespace(&lab.phone, || {
            let sender = UdpSocket::bind((lab.phone_ip, 0)).unwrap();
            let receiver = UdpSocket::bind((lab.phone_ip, 0)).unwrap();
            (sender, receiver, Capture::open(&lab.phone_link))
        });
        relayed_in_the_kernel(
            &forwarding,
            (&relay_in, &relay_out),
            (&sender, &receiver),
            5,
            172,
        );
        // What arrived on the phones' link, byte for byte: TOS set, both checksums valid.
        let frames = capture.udp_to(v4(&receiver).port());
        assert_eq!(frames.len(), 5, "captured {frames:?}");
        for frame in frames {
            assert_eq!(frame[1], 184, "TOS");
            assert_eq!(fold(sum(&frame[..20])), 0xffff, "IP header checksum");
            let udp = &frame[20..];
            let mut pseudo = Vec::from(&frame[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&udp[4..6]);
            assert_ne!(
                &udp[6..8],
                &[0, 0],
                "the UDP checksum was kept, not dropped"
            );
            assert_eq!(fold(sum(&pseudo) + sum(udp)), 0xffff, "UDP checksum");
        }
    }

    /// Root only: skipped otherwise. The receiver sits behind another link of the relay than
    /// the one holding the relay's address: the route table, not that link, picks the egress.
    #[test]
    fn each_stream_leaves_by_the_interface_its_receiver_is_routed_through() {
        let lab = match RemoteLab::with_far_phone() {
            Ok(lab) => lab,
            Err(error) if !e2e_tests::is_root() => {
                eprintln!("skipped: needs root ({error})");
                return;
            }
            Err(error) => panic!("{error}"),
        };
        let (far, far_ip) = lab.far.clone().unwrap();
        let (forwarding, relay_in, relay_out) = lab.in_namespace(&lab.relay, || {
            let relay_in = UdpSocket::bind((lab.relay_ip, 0)).unwrap();
            let relay_out = UdpSocket::bind((lab.relay_ip, 0)).unwrap();
            let (a, b) = (v4(&relay_in).port(), v4(&relay_out).port());
            let forwarding = KernelForwarding::attach(lab.relay_ip, a.min(b), a.max(b), 184)
                .expect("attach in the relay namespace");
            (forwarding, relay_in, relay_out)
        });
        let sender = lab.in_namespace(&lab.phone, || UdpSocket::bind((lab.phone_ip, 0)).unwrap());
        let receiver = lab.in_namespace(&far, || UdpSocket::bind((far_ip, 0)).unwrap());
        let port = relay_in.local_addr().unwrap().port();
        let route = Route {
            sender: v4(&sender),
            source: v4(&relay_out),
            destination: v4(&receiver),
        };
        assert!(forwarding.table().install(port, route));
        // A receiver no route reaches is refused: that stream stays with user space.
        assert!(!forwarding.table().install(
            port,
            Route {
                destination: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 4000),
                ..route
            }
        ));
        relayed_in_the_kernel(
            &forwarding,
            (&relay_in, &relay_out),
            (&sender, &receiver),
            5,
            172,
        );
        // Back the other way: the far phone's packets come in on the second link, are
        // relayed in the kernel there too and leave by the first.
        relayed_in_the_kernel(
            &forwarding,
            (&relay_out, &relay_in),
            (&receiver, &sender),
            3,
            100,
        );
    }

    /// Routes `relay_in` → `receiver` (from `relay_out`) for `sender`, sends `packets` packets
    /// of `size` bytes and checks each arrives rewritten, the kernel counted them all and user
    /// space saw none.
    fn relayed_in_the_kernel(
        forwarding: &KernelForwarding,
        (relay_in, relay_out): (&UdpSocket, &UdpSocket),
        (sender, receiver): (&UdpSocket, &UdpSocket),
        packets: u8,
        size: usize,
    ) {
        let port = v4(relay_in).port();
        assert!(forwarding.table().install(
            port,
            Route {
                sender: v4(sender),
                source: v4(relay_out),
                destination: v4(receiver),
            }
        ));
        receiver
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        relay_in
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buffer = [0_u8; 512];
        for round in 0..packets {
            let payload = vec![round; size];
            sender
                .send_to(&payload, relay_in.local_addr().unwrap())
                .unwrap();
            let (len, from) = receiver
                .recv_from(&mut buffer)
                .expect("the receiver got the relayed packet");
            assert_eq!(&buffer[..len], &payload[..]);
            assert_eq!(from, relay_out.local_addr().unwrap());
        }
        let sent = u64::from(packets);
        assert_eq!(
            forwarding.table().counters(port),
            (sent, sent * size as u64)
        );
        assert!(
            relay_in.recv(&mut buffer).is_err(),
            "user space saw a relayed packet"
        );
    }

    fn sum(bytes: &[u8]) -> u32 {
        bytes
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
            .sum()
    }

    fn fold(mut sum: u32) -> u32 {
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    fn run(arguments: &[&str]) -> Result<(), String> {
        let output = std::process::Command::new(arguments[0])
            .args(&arguments[1..])
            .output()
            .map_err(|error| format!("{arguments:?}: {error}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{arguments:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// A veth pair between two namespaces, each end with its /24 address, up (loopback too).
    fn veth(one: (&str, &str, Ipv4Addr), other: (&str, &str, Ipv4Addr)) -> Result<(), String> {
        run(&[
            "ip", "link", "add", one.1, "netns", one.0, "type", "veth", "peer", "name", other.1,
            "netns", other.0,
        ])?;
        for (namespace, link, address) in [one, other] {
            run(&[
                "ip",
                "-n",
                namespace,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                link,
            ])?;
            run(&["ip", "-n", namespace, "link", "set", link, "up"])?;
            run(&["ip", "-n", namespace, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Two namespaces joined by a veth pair: the relay at 10.M.0.1, the phones at 10.M.0.2.
    /// The phones' end computes every checksum in software (`ethtool -K … tx off`), so what
    /// reaches them carries real checksums for the relay's rewrite to keep right.
    struct RemoteLab {
        relay: String,
        phone: String,
        phone_link: String,
        relay_ip: Ipv4Addr,
        phone_ip: Ipv4Addr,
        /// With [`RemoteLab::with_far_phone`]: a third namespace behind a second link of the
        /// relay, 10.M.1.2 (the relay 10.M.1.1 on that side).
        far: Option<(String, Ipv4Addr)>,
    }

    impl RemoteLab {
        fn create() -> Result<Self, String> {
            // Unique per lab, not per process: tests of this binary run in parallel.
            let tag = e2e_tests::netns::unique_tag();
            // 10.200-249.x, from the tag's counter so parallel labs differ too. Only inside
            // the lab's own namespaces, which nothing routes to, so no root address can
            // clash; the range stays clear of the NAT lab's 10.100-199 all the same.
            let serial = u32::from_str_radix(&tag, 16).unwrap_or(0);
            let subnet = 200 + u8::try_from(serial % 50).unwrap_or(0);
            let lab = RemoteLab {
                relay: format!("vxfr{tag}"),
                phone: format!("vxfp{tag}"),
                phone_link: format!("vxfb{tag}"),
                relay_ip: Ipv4Addr::new(10, subnet, 0, 1),
                phone_ip: Ipv4Addr::new(10, subnet, 0, 2),
                far: None,
            };
            run(&["ip", "netns", "add", &lab.relay])?;
            run(&["ip", "netns", "add", &lab.phone])?;
            veth(
                (&lab.relay, &format!("vxfa{tag}"), lab.relay_ip),
                (&lab.phone, &lab.phone_link, lab.phone_ip),
            )?;
            run(&[
                "ip",
                "netns",
                "exec",
                &lab.phone,
                "ethtool",
                "-K",
                &lab.phone_link,
                "tx",
                "off",
            ])?;
            Ok(lab)
        }

        fn with_far_phone() -> Result<Self, String> {
            let mut lab = Self::create()?;
            let tag = &lab.relay[4..];
            let far = format!("vxfq{tag}");
            let octets = lab.relay_ip.octets();
            let far_ip = Ipv4Addr::new(octets[0], octets[1], 1, 2);
            let relay_side = Ipv4Addr::new(octets[0], octets[1], 1, 1);
            run(&["ip", "netns", "add", &far])?;
            lab.far = Some((far.clone(), far_ip));
            veth(
                (&lab.relay, &format!("vxfc{tag}"), relay_side),
                (&far, &format!("vxfd{tag}"), far_ip),
            )?;
            run(&[
                "ip",
                "-n",
                &far,
                "route",
                "add",
                "default",
                "via",
                &relay_side.to_string(),
            ])?;
            Ok(lab)
        }

        /// Runs `work` on a thread inside `namespace`; sockets it opens stay there.
        fn in_namespace<T: Send>(&self, namespace: &str, work: impl FnOnce() -> T + Send) -> T {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        let handle = std::fs::File::open(format!("/run/netns/{namespace}"))
                            .expect("namespace handle");
                        // SAFETY: setns on this (scoped, short-lived) thread only, with a
                        // valid namespace descriptor.
                        let entered =
                            unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                        assert_eq!(entered, 0, "setns: {}", io::Error::last_os_error());
                        work()
                    })
                    .join()
                    .expect("namespace thread")
            })
        }
    }

    impl Drop for RemoteLab {
        fn drop(&mut self) {
            let _ = run(&["ip", "netns", "del", &self.relay]);
            let _ = run(&["ip", "netns", "del", &self.phone]);
            if let Some((far, _)) = &self.far {
                let _ = run(&["ip", "netns", "del", far]);
            }
        }
    }

    /// Every IPv4 packet crossing one link, read with an `AF_PACKET` socket.
    struct Capture(socket2::Socket);

    impl Capture {
        fn open(link: &str) -> Self {
            let protocol = i32::from((libc::ETH_P_IP as u16).to_be());
            let socket = socket2::Socket::new(
                socket2::Domain::PACKET,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::from(protocol)),
            )
            .expect("packet socket");
            let name = std::ffi::CString::new(link).unwrap();
            // SAFETY: a NUL-terminated interface name.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            // SAFETY: all-zero is a valid sockaddr_ll; the fields set below make it an
            // AF_PACKET address of `index`.
            let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_protocol = (libc::ETH_P_IP as u16).to_be();
            address.sll_ifindex = i32::try_from(index).unwrap();
            // SAFETY: `address` is a sockaddr_ll of the size passed.
            let bound = unsafe {
                libc::bind(
                    socket.as_raw_fd(),
                    std::ptr::from_ref(&address).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(bound, 0, "bind: {}", io::Error::last_os_error());
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            Capture(socket)
        }

        /// The IPv4 packets (header onwards) of UDP datagrams to `port` seen so far.
        fn udp_to(&self, port: u16) -> Vec<Vec<u8>> {
            use std::io::Read as _;
            let mut frames = Vec::new();
            let mut buffer = [0_u8; 2048];
            while let Ok(len) = (&self.0).read(&mut buffer) {
                let packet = &buffer[..len];
                if len >= 28
                    && packet[9] == 17
                    && packet[0] == 0x45
                    && u16::from_be_bytes([packet[22], packet[23]]) == port
                {
                    frames.push(packet.to_vec());
                }
            }
            frames
        }
    }

    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const TCX_REDIRECT: u32 = 7;

    /// Runs the program once on `frame` (Ethernet onwards) with `BPF_PROG_TEST_RUN`: its
    /// verdict and the frame as it left.
    fn test_run(program: &OwnedFd, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0_u8; frame.len() + 256];
        let mut attr = Attr::new()
            .fd(0, program.as_raw_fd())
            .unwrap()
            .u32(8, u32::try_from(frame.len()).unwrap())
            .u32(12, u32::try_from(out.len()).unwrap())
            .u64(16, frame.as_ptr() as u64)
            .u64(24, out.as_mut_ptr() as u64)
            .u32(32, 1);
        crate::bpf::bpf(BPF_PROG_TEST_RUN, &mut attr).expect("BPF_PROG_TEST_RUN");
        let verdict = u32::from_ne_bytes(attr.0[4..8].try_into().unwrap());
        let size = u32::from_ne_bytes(attr.0[12..16].try_into().unwrap()) as usize;
        out.truncate(size);
        (verdict, out)
    }

    /// An Ethernet + IPv4 + UDP frame with valid checksums (UDP checksum 0 when `no_checksum`).
    #[allow(clippy::too_many_arguments)]
    fn frame(
        source: SocketAddrV4,
        destination: SocketAddrV4,
        tos: u8,
        ttl: u8,
        id: u16,
        payload: &[u8],
        no_checksum: bool,
    ) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = u16::try_from(28 + payload.len()).unwrap();
        let mut ip = vec![0x45, tos];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&id.to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, ttl, 17, 0, 0]);
        ip.extend_from_slice(&source.ip().octets());
        ip.extend_from_slice(&destination.ip().octets());
        let check = !(fold(sum(&ip)) as u16);
        ip[10..12].copy_from_slice(&check.to_be_bytes());
        let mut udp = Vec::new();
        udp.extend_from_slice(&source.port().to_be_bytes());
        udp.extend_from_slice(&destination.port().to_be_bytes());
        udp.extend_from_slice(&(total - 20).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        if !no_checksum {
            let mut pseudo = Vec::from(&ip[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(total - 20).to_be_bytes());
            let mut check = !(fold(sum(&pseudo) + sum(&udp)) as u16);
            if check == 0 {
                check = 0xffff;
            }
            udp[6..8].copy_from_slice(&check.to_be_bytes());
        }
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&udp);
        frame
    }

    fn udp_checksum_holds(packet: &[u8]) -> bool {
        let udp = &packet[20..];
        let mut pseudo = Vec::from(&packet[12..20]);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&udp[4..6]);
        fold(sum(&pseudo) + sum(udp)) == 0xffff
    }

    const PORT_MIN: u16 = 30000;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever the addresses, ports, TOS and payload: a packet from the route's sender
        /// leaves with exactly the route's addresses, ports and TOS, the rest untouched and
        /// both checksums valid (a zero UDP checksum stays zero); one from anywhere else is
        /// left alone. Root only (BPF_PROG_TEST_RUN): passes trivially elsewhere, with a note.
        #[test]
        fn rewrites_keep_every_checksum_and_touch_only_what_the_route_says(
            sender_ip: u32,
            sender_port: u16,
            other_port: u16,
            route_port in PORT_MIN..PORT_MIN + 8,
            source_port: u16,
            destination_host: u32,
            destination_port: u16,
            local: bool,
            old_tos: u8,
            new_tos: u8,
            ttl in 1_u8..,
            id: u16,
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            no_checksum: bool,
        ) {
            let relay = Ipv4Addr::LOCALHOST;
            // Loopback receivers are delivered in place; others go out of `egress`.
            let destination_ip = if local {
                Ipv4Addr::from(0x7f00_0000 | (destination_host & 0x00ff_ffff))
            } else {
                Ipv4Addr::from(0x0a00_0000 | (destination_host & 0x00ff_ffff))
            };
            let (table, program) = match load_program(relay, PORT_MIN, PORT_MIN + 7, new_tos) {
                Ok(loaded) => loaded,
                Err(error) if !e2e_tests::is_root() => {
                    eprintln!("skipped: cannot load BPF programs here ({error})");
                    return Ok(());
                }
                Err(error) => panic!("load as root: {error}"),
            };
            let sender = SocketAddrV4::new(Ipv4Addr::from(sender_ip), sender_port);
            let route = Route {
                sender,
                source: SocketAddrV4::new(relay, source_port),
                destination: SocketAddrV4::new(destination_ip, destination_port),
            };
            let hop = if local { NextHop::Local } else { NextHop::Interface(1) };
            proptest::prop_assert!(table.install_via(route_port, route, hop));
            let to_relay = SocketAddrV4::new(relay, route_port);
            let input = frame(sender, to_relay, old_tos, ttl, id, &payload, no_checksum);
            let (verdict, output) = test_run(&program, &input);
            proptest::prop_assert_eq!(verdict, if local { TCX_PASS as u32 } else { TCX_REDIRECT });
            let expected = frame(route.source, route.destination, new_tos, ttl, id, &payload, no_checksum);
            // Same bytes as a frame built from scratch with the new header fields, except the
            // UDP checksum, which may differ only as 0x0000 vs 0xffff (both say "valid").
            proptest::prop_assert_eq!(output.len(), expected.len());
            proptest::prop_assert_eq!(&output[..40], &expected[..40]);
            proptest::prop_assert_eq!(&output[42..], &expected[42..]);
            if no_checksum {
                proptest::prop_assert_eq!(&output[40..42], &[0_u8, 0][..]);
            } else {
                proptest::prop_assert!(udp_checksum_holds(&output[14..]));
            }
            proptest::prop_assert_eq!(fold(sum(&output[14..34])), 0xffff);
            proptest::prop_assert_eq!(table.counters(route_port), (1, payload.len() as u64));

            // Another source port: not the latched sender, left to user space untouched.
            if other_port != sender_port {
                let foreign = frame(SocketAddrV4::new(*sender.ip(), other_port), to_relay, old_tos, ttl, id, &payload, no_checksum);
                let (verdict, output) = test_run(&program, &foreign);
                proptest::prop_assert_eq!(verdict, TCX_NEXT as u32);
                proptest::prop_assert_eq!(output, foreign);
            }
            // A port without a route: untouched too.
            table.remove(route_port);
            let (verdict, output) = test_run(&program, &input);
            proptest::prop_assert_eq!(verdict, TCX_NEXT as u32);
            proptest::prop_assert_eq!(output, input);
        }
    }
}
