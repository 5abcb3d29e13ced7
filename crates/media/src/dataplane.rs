//! The data plane: one dedicated thread running a level-triggered epoll loop over every relay
//! socket, away from the signalling runtime.
//!
//! Each relay socket is a *leg*: it faces one party and has a partner leg facing the other
//! party. A packet arriving on a leg is checked against the leg's latched source and sent out of
//! the partner leg to the partner's endpoint, so the far party sees the relay port it sends to
//! (symmetric RTP, RFC 4961). The control task adds, updates and removes legs through a
//! command channel and reads counters through shared atomics.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fastpath::{BATCH, Batch, Epoll, EventFd, PACKET_CAPACITY};
use crate::forwarding::{ForwardingTable, KernelForwarding, Route};
use crate::ports::ReleasedPorts;
use crate::steering::Steering;

mod kernel;
mod leg;
mod steered;

use kernel::{forget, offload};
pub use leg::LegShared;
pub use steered::SteeredRange;
use steered::SteeredSocket;

/// How the data plane moves packets: the seam between the fast path and the reference path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// Every relay port's datagrams steered into one socket by a BPF `sk_lookup` program and
    /// read with `recvmmsg` of up to 64 packets across all streams; sent with `sendto` from
    /// the port's own socket. Needs CAP_BPF + CAP_NET_ADMIN; falls back to
    /// [`IoMode::Batched`] (with a warning) when the program cannot be attached.
    #[default]
    Steered,
    /// One `recvmsg` and one `sendto` for a socket holding one packet (the common case with
    /// many 50 pps streams), `recvmmsg`/`sendmmsg` of up to 32 packets for a socket that was
    /// busy in the previous round too.
    Batched,
    /// One `recvfrom` and one `sendto` per packet: the classic design, kept to measure against.
    Simple,
}

/// Name of the data-plane thread (benchmarks find its CPU time in /proc by it).
pub const THREAD_NAME: &str = "voxide-rtp";

const WAKER_TOKEN: u64 = u64::MAX;
const STEERED_TOKEN: u64 = u64::MAX - 1;

/// How often (ms) kernel route counters are turned into last-packet times for the media
/// timeout; `query` reads the counters live.
const KERNEL_SYNC_MS: u64 = 200;

/// Ready sockets taken per `epoll_wait`.
const EVENTS: usize = 4096;

/// A new leg handed to the data plane.
#[derive(Debug)]
pub struct LegRegistration {
    pub id: usize,
    pub socket: UdpSocket,
    pub partner: usize,
    /// Where to send before the party's own packets were seen (its SDP address).
    pub destination: Option<SocketAddr>,
    pub shared: Arc<LegShared>,
    /// Port to report to the allocator once this socket is closed (set on RTP legs: the pair's
    /// RTP port stands for the pair).
    pub release_port: Option<u16>,
}

/// Orders from the control task.
#[derive(Debug)]
pub enum DataCommand {
    Add(Vec<LegRegistration>),
    SetDestination {
        id: usize,
        destination: Option<SocketAddr>,
    },
    /// Closes the legs' sockets and hands their ports back to the allocator. For `quarantine`
    /// afterwards the next owner of each port does not latch onto the removed leg's peer.
    Remove {
        ids: Vec<usize>,
        quarantine: Duration,
    },
    Shutdown,
}

/// How much of a leg's own socket [`Plane::relay_batched`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// What one round's share is: the socket is watched (level-triggered), so the next wait
    /// reports what is left.
    Ready,
    /// Everything queued, until the socket would block: nothing reports the socket again (a
    /// steered leg's own socket, kept out of epoll, holding what arrived before its port was
    /// steered).
    All,
}

/// The peer of a removed leg, remembered for its port: late packets of the ended call (a
/// phone still sending after the BYE, packets in flight) must not become the media of the
/// call the port goes to next. Before its first accepted packet, a leg on that port drops
/// packets from these endpoints until `until_ms`, unless its own party's SDP names the same
/// endpoint (then nothing tells the two apart, and the SDP wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FormerPeer {
    /// The source the removed leg had latched and the endpoint its party's SDP gave.
    endpoints: [Option<SocketAddr>; 2],
    /// Milliseconds since the relay's epoch.
    until_ms: u64,
}

impl FormerPeer {
    /// Whether a packet from `source` at `now_ms` is the former peer's, for a leg whose own
    /// party advertised `own_endpoint`.
    fn refuses(&self, source: SocketAddr, own_endpoint: Option<SocketAddr>, now_ms: u64) -> bool {
        now_ms < self.until_ms
            && own_endpoint != Some(source)
            && self.endpoints.contains(&Some(source))
    }
}

struct Leg {
    socket: UdpSocket,
    partner: usize,
    /// The poll round in which the socket was last ready: ready again in the next round means
    /// packets queue faster than one per round, so the batched calls pay off.
    ready_round: u64,
    latched: Option<SocketAddr>,
    destination: Option<SocketAddr>,
    shared: Arc<LegShared>,
    release_port: Option<u16>,
    /// The socket's local port.
    port: u16,
    /// The peer of the port's previous owner, while its late packets are kept out.
    former: Option<FormerPeer>,
    /// The local port, when its datagrams are steered to the shared socket.
    steered_port: Option<u16>,
    /// The socket's own IPv4 address, when kernel forwarding can use it.
    local: Option<SocketAddrV4>,
    /// The kernel route carrying this leg's packets, and its packet count at the last sync.
    offloaded: Option<(Route, u64)>,
    /// A route the kernel could not take (no route to the receiver): not asked again for
    /// every packet.
    refused: Option<Route>,
}

impl Leg {
    fn target(&self) -> Option<SocketAddr> {
        self.latched.or(self.destination)
    }
}

/// Wakes the data plane for queued commands with one eventfd write until the thread takes
/// them, so the commands of a burst (an offer queues three, a loaded relay many more) cost one
/// system call and one wake-up between them.
#[derive(Debug)]
struct CommandSignal {
    eventfd: EventFd,
    /// Raised and not yet taken: the eventfd is readable, the thread will look.
    pending: AtomicBool,
}

impl CommandSignal {
    fn new() -> io::Result<Self> {
        Ok(CommandSignal {
            eventfd: EventFd::new()?,
            pending: AtomicBool::new(false),
        })
    }

    /// After queueing a command.
    fn raise(&self) -> io::Result<()> {
        // Acquire-release on both sides: a thread that finds the signal pending (no write)
        // queued its command before the data plane's `take`, which reads this value, so the
        // data plane sees the command when it drains the queue after taking.
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.eventfd.wake().inspect_err(|_| {
            self.pending.store(false, Ordering::Release);
        })
    }

    /// Before the data plane drains the queue. The eventfd is cleared first: a `raise` that
    /// finds the signal still pending then has its command drained after this, and one after
    /// the swap writes the eventfd anew. (The other order could clear such a write and leave
    /// the signal pending with nothing to wake the thread.)
    fn take(&self) {
        self.eventfd.clear();
        self.pending.swap(false, Ordering::AcqRel);
    }
}

/// The control side's handle on the data-plane thread; dropping it stops the thread.
#[derive(Debug)]
pub struct DataPlane {
    sender: mpsc::Sender<DataCommand>,
    signal: Arc<CommandSignal>,
    thread: Option<JoinHandle<()>>,
}

impl DataPlane {
    /// Starts the data-plane thread.
    ///
    /// # Errors
    /// When epoll or the thread cannot be created.
    pub fn spawn(
        mode: IoMode,
        coalesce: Duration,
        epoch: Instant,
        released: Arc<ReleasedPorts>,
        range: SteeredRange,
    ) -> io::Result<Self> {
        let poll = Epoll::new()?;
        let signal = Arc::new(CommandSignal::new()?);
        poll.add(signal.eventfd.raw(), WAKER_TOKEN)?;
        let (mode, steered) = match mode {
            IoMode::Steered => match SteeredSocket::attach(range) {
                Ok(steered) => {
                    poll.add(steered.socket.as_raw_fd(), STEERED_TOKEN)?;
                    tracing::info!(address = %range.address, "media: receive steering attached (one socket for all relay ports)");
                    (IoMode::Steered, Some(steered))
                }
                Err(error) => {
                    tracing::warn!(%error, "media: cannot attach receive steering (needs CAP_BPF and CAP_NET_ADMIN); one socket per port");
                    (IoMode::Batched, None)
                }
            },
            other => (other, None),
        };
        let forwarding = match (range.kernel_forwarding, mode, range.address) {
            (true, IoMode::Steered | IoMode::Batched, IpAddr::V4(address))
                if !address.is_unspecified() =>
            {
                match KernelForwarding::attach(address, range.port_min, range.port_max, range.tos) {
                    Ok(forwarding) => {
                        tracing::info!(%address, "media: kernel forwarding attached (latched streams relayed in the kernel)");
                        Some(forwarding)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "media: cannot attach kernel forwarding (needs CAP_BPF, CAP_NET_ADMIN and Linux 6.6+); relaying in user space");
                        None
                    }
                }
            }
            _ => None,
        };
        let plane_signal = Arc::clone(&signal);
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let mut plane = Plane {
                    poll,
                    signal: plane_signal,
                    legs: HashMap::default(),
                    batch: Batch::new(),
                    accepted: Vec::with_capacity(BATCH),
                    epoch,
                    mode,
                    coalesce,
                    released,
                    former_peers: HashMap::default(),
                    steered,
                    forwarding,
                    last_sync_ms: 0,
                    round: 0,
                    round_ms: 0,
                };
                if let Err(error) = plane.run(&receiver) {
                    tracing::error!(%error, "media data plane stopped");
                }
            })?;
        Ok(DataPlane {
            sender,
            signal,
            thread: Some(thread),
        })
    }

    /// Queues a command and wakes the thread (unless it is woken already).
    pub fn send(&self, command: DataCommand) {
        if self.sender.send(command).is_ok()
            && let Err(error) = self.signal.raise()
        {
            tracing::error!(%error, "cannot wake the media data plane");
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.send(DataCommand::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Hashes leg ids (small integers handed out in sequence) with one multiplication: SipHash's
/// flood resistance buys nothing for keys the relay picks itself, and the map is read twice per
/// relayed packet.
type LegIdHasher = std::hash::BuildHasherDefault<MultiplyHasher>;

#[derive(Debug, Default)]
struct MultiplyHasher(u64);

impl std::hash::Hasher for MultiplyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, value: usize) {
        // The high bits select hashbrown's buckets and control bytes: a Fibonacci multiply
        // spreads sequential ids over both.
        self.0 = (value as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn elapsed_ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct Plane {
    poll: Epoll,
    signal: Arc<CommandSignal>,
    legs: HashMap<usize, Leg, LegIdHasher>,
    batch: Batch,
    accepted: Vec<usize>,
    epoch: Instant,
    mode: IoMode,
    coalesce: Duration,
    released: Arc<ReleasedPorts>,
    /// Peers of removed legs by port, until the port's next leg takes them over (at most one
    /// per port of the range).
    former_peers: HashMap<u16, FormerPeer>,
    steered: Option<SteeredSocket>,
    forwarding: Option<KernelForwarding>,
    /// When kernel route counters were last turned into last-packet times.
    last_sync_ms: u64,
    /// Poll rounds so far.
    round: u64,
    /// Milliseconds since the epoch when the current poll round began.
    round_ms: u64,
}

impl Plane {
    fn run(&mut self, receiver: &mpsc::Receiver<DataCommand>) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            // With kernel routes the loop also wakes to notice their packets (media timeout).
            let timeout = self.forwarding.as_ref().map(|_| KERNEL_SYNC_MS as i32);
            let ready = match self.poll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            // One clock read per round: last-packet times only feed the media timeout.
            self.round += 1;
            self.round_ms = elapsed_ms(self.epoch);
            if self.forwarding.is_some() && self.round_ms >= self.last_sync_ms + KERNEL_SYNC_MS {
                self.sync_kernel_routes();
            }
            // Commands first: a packet reported in the same round may have been sent after its
            // sender saw the ng reply that queued them (a re-INVITE's new endpoint, say), and
            // the eventfd was written before that reply went out.
            if events[..ready].iter().any(|event| event.u64 == WAKER_TOKEN) {
                self.signal.take();
                if !self.apply_commands(receiver) {
                    return Ok(());
                }
            }
            let mut relayed = false;
            for event in &events[..ready] {
                let token = event.u64;
                if token == WAKER_TOKEN {
                    continue;
                }
                relayed = true;
                if token == STEERED_TOKEN {
                    self.relay_steered();
                    continue;
                }
                // Tokens are leg ids (usize); a removed leg's stale event finds no leg.
                self.relay(usize::try_from(token).unwrap_or(usize::MAX));
            }
            // Interrupt coalescing: with thousands of 50 pps streams each wake-up finds about
            // one packet, and the wake-up (epoll_wait, context switch) costs more than relaying
            // it. Pausing briefly after a busy round lets the next epoll_wait collect many
            // sockets at once, for at most `coalesce` of added latency. An idle relay still
            // blocks in epoll_wait.
            if relayed && !self.coalesce.is_zero() {
                std::thread::sleep(self.coalesce);
            }
        }
    }

    /// Applies queued commands; false on shutdown (or when the control side is gone). Packets
    /// that reached new sockets before registration are reported by the next (level-triggered)
    /// wait, when every queued command has been applied.
    fn apply_commands(&mut self, receiver: &mpsc::Receiver<DataCommand>) -> bool {
        let mut steered_now = Vec::new();
        loop {
            match receiver.try_recv() {
                Ok(DataCommand::Add(registrations)) => {
                    for registration in registrations {
                        let id = registration.id;
                        self.add(registration);
                        if self
                            .legs
                            .get(&id)
                            .is_some_and(|leg| leg.steered_port.is_some())
                        {
                            steered_now.push(id);
                        }
                    }
                }
                Ok(DataCommand::SetDestination { id, destination }) => {
                    // Both directions are re-learnt in user space.
                    self.forget_route(id);
                    if let Some(partner) = self.legs.get(&id).map(|leg| leg.partner) {
                        self.forget_route(partner);
                    }
                    if let Some(leg) = self.legs.get_mut(&id) {
                        // A new SDP endpoint (re-INVITE: new port, new network) means the party
                        // moved: learn its source again. The first SDP endpoint keeps a latch
                        // made by early packets.
                        if leg.destination.is_some() && leg.destination != destination {
                            leg.latched = None;
                            leg.shared.set_latched(None);
                        }
                        leg.destination = destination;
                    }
                }
                Ok(DataCommand::Remove { ids, quarantine }) => {
                    let until_ms = self
                        .round_ms
                        .saturating_add(u64::try_from(quarantine.as_millis()).unwrap_or(u64::MAX));
                    let mut closed = Vec::new();
                    for id in ids {
                        // The kernel stops relaying for the port before anyone can reuse it.
                        self.forget_route(id);
                        if let Some(leg) = self.legs.remove(&id) {
                            let endpoints = [leg.latched, leg.destination];
                            if !quarantine.is_zero() && endpoints.iter().any(Option::is_some) {
                                self.former_peers.insert(
                                    leg.port,
                                    FormerPeer {
                                        endpoints,
                                        until_ms,
                                    },
                                );
                            }
                            if let (Some(port), Some(steered)) =
                                (leg.steered_port, self.steered.as_mut())
                            {
                                let _ = steered.steering.steer(port, false);
                                if let Some(slot) = steered.slot(port) {
                                    *slot = None;
                                }
                            } else {
                                let _ = self.poll.delete(leg.socket.as_raw_fd());
                            }
                            closed.extend(leg.release_port);
                        }
                    }
                    // Legs (and their sockets) are dropped now; the ports may be reused.
                    self.released.push(closed);
                }
                Ok(DataCommand::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => {
                    // Packets that reached a newly steered leg's own socket before its port was
                    // steered (the port was bound when the offer was answered): relay them now,
                    // once every queued command is in place — the answer that added a leg also
                    // set its partner's destination — later ones arrive on the shared socket.
                    // The socket is not watched (see `add`): everything queued is taken now,
                    // or it would stay there, neither relayed nor counted.
                    for id in steered_now {
                        self.relay_batched(id, Take::All);
                    }
                    return true;
                }
            }
        }
    }

    fn add(&mut self, registration: LegRegistration) {
        let socket = registration.socket;
        let id = registration.id;
        let token = u64::try_from(id).unwrap_or(WAKER_TOKEN);
        if token == WAKER_TOKEN {
            tracing::error!(id, "leg id out of range");
            return;
        }
        let steered_port = self.steer(id, &socket);
        let local_address = socket.local_addr().ok();
        let local = match local_address {
            Some(SocketAddr::V4(local)) if !local.ip().is_unspecified() => Some(local),
            _ => None,
        };
        let port = local_address.map_or(0, |address| address.port());
        let former = self
            .former_peers
            .remove(&port)
            .filter(|former| former.until_ms > self.round_ms);
        // A steered leg's own socket only sends: kept out of epoll, because a watched socket
        // makes every send walk its wait queue (sock_wfree → write-space wake-up; 8 % of the
        // relay's CPU in a profile). Otherwise the socket is watched as usual.
        if steered_port.is_none()
            && let Err(error) = self.poll.add(socket.as_raw_fd(), token)
        {
            tracing::error!(%error, "cannot register relay socket");
            return;
        }
        self.legs.insert(
            id,
            Leg {
                socket,
                partner: registration.partner,
                ready_round: 0,
                latched: None,
                destination: registration.destination,
                shared: registration.shared,
                release_port: registration.release_port,
                port,
                former,
                steered_port,
                local,
                offloaded: None,
                refused: None,
            },
        );
    }

    /// Steers `socket`'s port to the shared socket; the port, when it is steered.
    fn steer(&mut self, id: usize, socket: &UdpSocket) -> Option<u16> {
        let steered = self.steered.as_mut()?;
        let port = socket.local_addr().ok()?.port();
        *steered.slot(port)? = Some(id);
        match steered.steering.steer(port, true) {
            Ok(()) => Some(port),
            Err(error) => {
                if let Some(slot) = steered.slot(port) {
                    *slot = None;
                }
                tracing::debug!(%error, port, "media: port not steered");
                None
            }
        }
    }

    /// Takes leg `id`'s packets back from the kernel, keeping what it counted.
    fn forget_route(&mut self, id: usize) {
        forget(&mut self.legs, self.forwarding.as_ref(), id);
    }

    /// Kernel-relayed packets keep their legs alive: a leg whose route count grew had a packet.
    fn sync_kernel_routes(&mut self) {
        self.last_sync_ms = self.round_ms;
        let Some(forwarding) = self.forwarding.as_ref() else {
            return;
        };
        let table = forwarding.table();
        for leg in self.legs.values_mut() {
            if let (Some((_, seen)), Some(local)) = (leg.offloaded.as_mut(), leg.local) {
                let (packets, _) = table.counters(local.port());
                if packets != *seen {
                    *seen = packets;
                    leg.shared
                        .last_packet
                        .store(self.round_ms + 1, Ordering::Relaxed);
                }
            }
        }
    }

    fn relay(&mut self, id: usize) {
        match self.mode {
            IoMode::Batched | IoMode::Steered => self.relay_batched(id, Take::Ready),
            IoMode::Simple => self.relay_simple(id),
        }
    }

    /// Latch on first use, then strict source: packets from any other address are dropped. A
    /// port's previous peer is not latched onto (see [`FormerPeer`]).
    fn admit(leg: &mut Leg, source: SocketAddr, now_ms: u64) -> bool {
        match leg.latched {
            Some(latched) => latched == source,
            None if leg
                .former
                .is_some_and(|former| former.refuses(source, leg.destination, now_ms)) =>
            {
                false
            }
            None => {
                leg.latched = Some(source);
                leg.shared.set_latched(Some(source));
                true
            }
        }
    }

    fn relay_batched(&mut self, id: usize, take: Take) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        // A socket also ready in the previous round is busy: take up to BATCH per call. Else it
        // most likely holds one packet, and recvmsg is cheaper than recvmmsg (which tries a
        // second datagram before returning). A socket emptied in one go is read in batches.
        let busy = take == Take::All || leg.ready_round + 1 >= self.round;
        leg.ready_round = self.round;
        loop {
            let Some(leg) = self.legs.get_mut(&id) else {
                return;
            };
            let fd = leg.socket.as_raw_fd();
            let result = if busy {
                self.batch.receive(fd)
            } else {
                self.batch.receive_one(fd)
            };
            let received = match result {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // e.g. ICMP port unreachable reported on the socket: count and go on
                    leg.shared.record(0, 0, 1, 0);
                    continue;
                }
            };
            self.accepted.clear();
            let mut bytes = 0_u64;
            let mut dropped = 0_u64;
            for index in 0..received {
                let admitted = !self.batch.is_truncated(index)
                    && self
                        .batch
                        .source(index)
                        .is_some_and(|source| Self::admit(leg, source, self.round_ms));
                if admitted {
                    self.accepted.push(index);
                    bytes += self.batch.packet(index).len() as u64;
                } else {
                    dropped += 1;
                }
            }
            let partner = leg.partner;
            // Counted before sending, so a reader that saw the packet arrive sees it counted.
            leg.shared
                .record(self.accepted.len() as u64, bytes, dropped, self.round_ms);
            if !self.accepted.is_empty() {
                let target = self
                    .legs
                    .get(&partner)
                    .and_then(|p| p.target().map(|t| (p.socket.as_raw_fd(), t)));
                let failed = match target {
                    Some((fd, destination)) => {
                        match self.batch.send(fd, destination, &self.accepted) {
                            Ok(sent) => (self.accepted.len() - sent) as u64,
                            Err(_) => self.accepted.len() as u64,
                        }
                    }
                    None => self.accepted.len() as u64,
                };
                if failed != 0
                    && let Some(leg) = self.legs.get(&id)
                {
                    leg.shared.record(0, 0, failed, 0);
                } else if failed == 0 {
                    offload(&mut self.legs, self.forwarding.as_ref(), id);
                }
            }
            if take == Take::Ready && (!busy || received < BATCH) {
                // Level-triggered: what is left is reported by the next wait.
                return;
            }
        }
    }

    /// Relays what the shared socket holds: up to [`BATCH`] datagrams of any streams per
    /// `recvmmsg`, each checked against its leg (found by destination port) and sent from the
    /// partner leg's socket.
    fn relay_steered(&mut self) {
        let Some(steered) = self.steered.as_ref() else {
            return;
        };
        let fd = steered.socket.as_raw_fd();
        loop {
            let received = match self.batch.receive_steered(fd) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or an error the socket reported: the next wait tells again.
                Err(_) => return,
            };
            for index in 0..received {
                let Some(id) = self
                    .batch
                    .destination_port(index)
                    .and_then(|port| steered.leg(port))
                else {
                    // A port released between the kernel's steering and this read.
                    continue;
                };
                let Some(leg) = self.legs.get_mut(&id) else {
                    continue;
                };
                let admitted = !self.batch.is_truncated(index)
                    && self
                        .batch
                        .source(index)
                        .is_some_and(|source| Self::admit(leg, source, self.round_ms));
                if !admitted {
                    leg.shared.record(0, 0, 1, 0);
                    continue;
                }
                let length = self.batch.packet(index).len() as u64;
                leg.shared.record(1, length, 0, self.round_ms);
                let partner = leg.partner;
                let target = self
                    .legs
                    .get(&partner)
                    .and_then(|p| p.target().map(|t| (p.socket.as_raw_fd(), t)));
                let sent = target.is_some_and(|(fd, destination)| {
                    self.batch
                        .send(fd, destination, &[index])
                        .is_ok_and(|n| n == 1)
                });
                if !sent && let Some(leg) = self.legs.get(&id) {
                    leg.shared.record(0, 0, 1, 0);
                } else if sent {
                    offload(&mut self.legs, self.forwarding.as_ref(), id);
                }
            }
            if received < BATCH {
                return;
            }
        }
    }

    fn relay_simple(&mut self, id: usize) {
        let mut buffer = [0_u8; PACKET_CAPACITY];
        loop {
            let Some(leg) = self.legs.get_mut(&id) else {
                return;
            };
            let (len, source) = match leg.socket.recv_from(&mut buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    leg.shared.record(0, 0, 1, 0);
                    continue;
                }
            };
            if len > PACKET_CAPACITY - 1 || !Self::admit(leg, source, self.round_ms) {
                leg.shared.record(0, 0, 1, 0);
                continue;
            }
            let partner = leg.partner;
            leg.shared.record(1, len as u64, 0, self.round_ms);
            let sent = self.legs.get(&partner).is_some_and(|p| {
                p.target()
                    .is_some_and(|t| p.socket.send_to(&buffer[..len], t).is_ok())
            });
            if !sent && let Some(leg) = self.legs.get(&id) {
                leg.shared.record(0, 0, 1, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests;
