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

/// What the control side can see of one leg. Only the data-plane thread writes the counters,
/// so plain load/store (no read-modify-write) is enough and keeps the hot path cheap.
#[derive(Debug, Default)]
pub struct LegShared {
    packets: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since the relay's epoch of the last accepted packet, plus one (0 = never).
    last_packet: AtomicU64,
    /// The source the leg latched onto (first packet); afterwards only it is accepted. Written
    /// only when a leg latches or re-learns, so the lock is never contended on the hot path.
    latched: Mutex<Option<SocketAddr>>,
    /// The kernel route carrying this leg's packets, if any.
    kernel: Mutex<KernelRoute>,
}

/// The relay port whose kernel route carries a leg's packets, with the table holding its
/// counters (added to the leg's own until the route is removed and folded in); and whether the
/// control side has ended the leg, after which no route may carry it.
#[derive(Debug, Default)]
struct KernelRoute {
    route: Option<(Arc<ForwardingTable>, u16)>,
    stopped: bool,
}

impl LegShared {
    /// Packets, bytes and errors received on this leg.
    pub fn counters(&self) -> ng_protocol::Counters {
        let kernel = self.kernel_guard();
        let (kernel_packets, kernel_bytes) = kernel
            .route
            .as_ref()
            .map_or((0, 0), |(table, port)| table.counters(*port));
        ng_protocol::Counters {
            packets: self.packets.load(Ordering::Relaxed) + kernel_packets,
            bytes: self.bytes.load(Ordering::Relaxed) + kernel_bytes,
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    fn kernel_guard(&self) -> std::sync::MutexGuard<'_, KernelRoute> {
        match self.kernel.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether the kernel relays this leg's packets now.
    pub fn kernelized(&self) -> bool {
        self.kernel_guard().route.is_some()
    }

    /// Makes the kernel stop relaying this leg's packets at once, from the control side: a
    /// deleted call's media ends with the reply to the delete, not when the data plane gets to
    /// the removal (which then folds the kernel's counts in as usual).
    pub fn stop_kernel(&self) {
        let mut kernel = self.kernel_guard();
        kernel.stopped = true;
        if let Some((table, port)) = kernel.route.as_ref() {
            table.remove(*port);
        }
    }

    /// Whether the control side has ended the leg (no route is installed for it any more).
    fn kernel_stopped(&self) -> bool {
        self.kernel_guard().stopped
    }

    /// The kernel now relays this leg's packets arriving at `port`, just installed. False, with
    /// the route removed again, when the control side ended the leg meanwhile: the route went
    /// in after its check, and either it sees the route here or this sees its mark.
    fn set_kernel(&self, table: Arc<ForwardingTable>, port: u16) -> bool {
        let mut kernel = self.kernel_guard();
        if kernel.stopped {
            table.remove(port);
            return false;
        }
        kernel.route = Some((table, port));
        true
    }

    /// The kernel route is gone: its counts become the leg's own.
    fn fold_kernel(&self) {
        let mut kernel = self.kernel_guard();
        if let Some((table, port)) = kernel.route.take() {
            let (packets, bytes) = table.counters(port);
            self.add(&self.packets, packets);
            self.add(&self.bytes, bytes);
        }
    }

    /// Milliseconds since the epoch of the last accepted packet.
    pub fn last_packet_ms(&self) -> Option<u64> {
        self.last_packet.load(Ordering::Relaxed).checked_sub(1)
    }

    /// The latched source, once a packet arrived.
    pub fn latched(&self) -> Option<SocketAddr> {
        match self.latched.lock() {
            Ok(latched) => *latched,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set_latched(&self, source: Option<SocketAddr>) {
        match self.latched.lock() {
            Ok(mut latched) => *latched = source,
            Err(poisoned) => *poisoned.into_inner() = source,
        }
    }

    fn add(&self, counter: &AtomicU64, amount: u64) {
        if amount != 0 {
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(amount),
                Ordering::Relaxed,
            );
        }
    }

    fn record(&self, packets: u64, bytes: u64, errors: u64, now_ms: u64) {
        self.add(&self.packets, packets);
        self.add(&self.bytes, bytes);
        self.add(&self.errors, errors);
        if packets != 0 {
            self.last_packet.store(now_ms + 1, Ordering::Relaxed);
        }
    }
}

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

/// The relay ports' address and range, for receive steering and kernel forwarding.
#[derive(Debug, Clone, Copy)]
pub struct SteeredRange {
    pub address: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    /// TOS byte of packets the kernel relays.
    pub tos: u8,
    /// Hand latched streams to the in-kernel forwarder ([`crate::forwarding`]).
    pub kernel_forwarding: bool,
}

/// Receive buffer of the shared socket: it queues every stream's packets, so it needs room for
/// a burst of thousands of streams while the thread is busy sending.
const STEERED_RECEIVE_BUFFER: usize = 16 * 1024 * 1024;

/// The shared receive socket and the program that fills it.
struct SteeredSocket {
    socket: UdpSocket,
    steering: Steering,
    /// Which leg owns each steered port, indexed by port − `port_min` (a dense table stays in
    /// cache; a hash map lookup per packet was a cache miss).
    legs_by_port: Vec<Option<usize>>,
    port_min: u16,
}

impl SteeredSocket {
    fn slot(&mut self, port: u16) -> Option<&mut Option<usize>> {
        self.legs_by_port
            .get_mut(usize::from(port.checked_sub(self.port_min)?))
    }

    fn leg(&self, port: u16) -> Option<usize> {
        *self
            .legs_by_port
            .get(usize::from(port.checked_sub(self.port_min)?))?
    }
}

impl SteeredSocket {
    fn attach(range: SteeredRange) -> io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let address = SocketAddr::new(range.address, 0);
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if address.is_ipv6() {
            // A wildcard IPv6 relay also takes IPv4; its per-port sockets are dual-stack too.
            socket.set_only_v6(false)?;
        }
        socket.set_nonblocking(true)?;
        crate::fastpath::set_receive_original_destination(&socket, address.is_ipv6())?;
        crate::fastpath::force_receive_buffer(&socket, STEERED_RECEIVE_BUFFER);
        socket.bind(&address.into())?;
        let socket: UdpSocket = socket.into();
        let steering = Steering::attach(
            socket.as_raw_fd(),
            range.address,
            range.port_min,
            range.port_max,
        )?;
        Ok(SteeredSocket {
            socket,
            steering,
            legs_by_port: vec![
                None;
                usize::from(range.port_max.saturating_sub(range.port_min)) + 1
            ],
            port_min: range.port_min,
        })
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

/// After user space relayed a packet of leg `id`: once the leg is latched and its partner's
/// target known (IPv4 both), the kernel takes the stream over. Also drops the partner's route
/// when it no longer points at this leg's target (this leg just latched to a new source).
fn offload(
    legs: &mut HashMap<usize, Leg, LegIdHasher>,
    forwarding: Option<&KernelForwarding>,
    id: usize,
) {
    let Some(forwarding) = forwarding else {
        return;
    };
    let Some(leg) = legs.get(&id) else {
        return;
    };
    let partner_id = leg.partner;
    let target = match leg.target() {
        Some(SocketAddr::V4(target)) => Some(target),
        _ => None,
    };
    let sender = match leg.latched {
        Some(SocketAddr::V4(sender)) => Some(sender),
        _ => None,
    };
    let local = leg.local;
    let current = leg.offloaded.map(|(route, _)| route);
    let refused = leg.refused;
    let Some(partner) = legs.get(&partner_id) else {
        return;
    };
    if partner
        .offloaded
        .is_some_and(|(route, _)| Some(route.destination) != target)
    {
        forget(legs, Some(forwarding), partner_id);
    }
    let Some(partner) = legs.get(&partner_id) else {
        return;
    };
    let destination = match partner.target() {
        Some(SocketAddr::V4(destination)) => destination,
        _ => return,
    };
    let (Some(sender), Some(local), Some(source)) = (sender, local, partner.local) else {
        return;
    };
    let route = Route {
        sender,
        source,
        destination,
    };
    if current == Some(route) || refused == Some(route) {
        return;
    }
    forget(legs, Some(forwarding), id);
    let Some(leg) = legs.get_mut(&id) else {
        return;
    };
    // Deleted: its removal is on the way, and no packet after the delete may be relayed.
    if leg.shared.kernel_stopped() {
        return;
    }
    let table = forwarding.table();
    if table.install(local.port(), route) && leg.shared.set_kernel(Arc::clone(table), local.port())
    {
        leg.offloaded = Some((route, 0));
    } else {
        leg.refused = Some(route);
    }
}

fn forget(
    legs: &mut HashMap<usize, Leg, LegIdHasher>,
    forwarding: Option<&KernelForwarding>,
    id: usize,
) {
    let (Some(forwarding), Some(leg)) = (forwarding, legs.get_mut(&id)) else {
        return;
    };
    if leg.offloaded.take().is_some()
        && let Some(local) = leg.local
    {
        forwarding.table().remove(local.port());
        leg.shared.fold_kernel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_ride_on_a_pending_wake_up_until_the_data_plane_takes_them() {
        let signal = CommandSignal::new().unwrap();
        let poll = Epoll::new().unwrap();
        poll.add(signal.eventfd.raw(), WAKER_TOKEN).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        assert_eq!(poll.wait(&mut events, Some(0)).unwrap(), 0);
        signal.raise().unwrap();
        assert!(signal.pending.load(Ordering::Acquire));
        signal.raise().unwrap();
        assert_eq!(poll.wait(&mut events, Some(0)).unwrap(), 1);
        signal.take();
        assert!(!signal.pending.load(Ordering::Acquire));
        assert_eq!(poll.wait(&mut events, Some(0)).unwrap(), 0, "taken");
        // Taken: the next command writes again.
        signal.raise().unwrap();
        assert_eq!(poll.wait(&mut events, Some(1000)).unwrap(), 1);
    }

    /// A command queued while the data plane takes the signal is never stranded: either it
    /// wakes the data plane again or the data plane sees it in the drain that follows.
    #[test]
    fn no_command_is_stranded_by_a_wake_up_racing_with_take() {
        const COMMANDS: u32 = 100_000;
        let signal = Arc::new(CommandSignal::new().unwrap());
        let (sender, receiver) = mpsc::channel::<u32>();
        let producer = std::thread::spawn({
            let signal = Arc::clone(&signal);
            move || {
                for n in 0..COMMANDS {
                    sender.send(n).unwrap();
                    signal.raise().unwrap();
                }
            }
        });
        let poll = Epoll::new().unwrap();
        poll.add(signal.eventfd.raw(), WAKER_TOKEN).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        let mut received = 0;
        while received < COMMANDS {
            let ready = poll.wait(&mut events, Some(2000)).unwrap();
            assert_eq!(ready, 1, "stranded after {received} commands");
            signal.take();
            while receiver.try_recv().is_ok() {
                received += 1;
            }
        }
        producer.join().unwrap();
    }

    /// Packets that reach a leg's own socket before the data plane steers its port (a phone of
    /// the port's previous call still sending while the offer's reply is on its way) are all
    /// taken when the leg is added: nothing watches that socket afterwards, so any left behind
    /// would be neither relayed nor counted. Steering needs CAP_BPF + CAP_NET_ADMIN; without
    /// them the socket is watched and this holds as well.
    #[test]
    fn every_packet_queued_before_a_port_is_steered_is_relayed() {
        use std::net::Ipv4Addr;
        const PACKETS: u8 = 5;
        // Four ports below the kernel's ephemeral range, not used by other tests.
        let mut base = 23_200_u16;
        let sockets = loop {
            let bound: Vec<UdpSocket> = (base..base + 4)
                .map_while(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).ok())
                .collect();
            if bound.len() == 4 {
                break bound;
            }
            base += 4;
        };
        for socket in &sockets {
            socket.set_nonblocking(true).unwrap();
        }
        let [near, first_in, far, first_out] = <[UdpSocket; 4]>::try_from(sockets).unwrap();
        let phone = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let plane = DataPlane::spawn(
            IoMode::Steered,
            Duration::ZERO,
            Instant::now(),
            Arc::default(),
            SteeredRange {
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port_min: base,
                port_max: base + 3,
                tos: 0,
                kernel_forwarding: false,
            },
        )
        .unwrap();
        let legs = |ids: [usize; 2], [near, far]: [UdpSocket; 2], shared: &Arc<LegShared>| {
            DataCommand::Add(vec![
                LegRegistration {
                    id: ids[0],
                    socket: near,
                    partner: ids[1],
                    destination: None,
                    shared: Arc::clone(shared),
                    release_port: None,
                },
                LegRegistration {
                    id: ids[1],
                    socket: far,
                    partner: ids[0],
                    destination: Some(receiver.local_addr().unwrap()),
                    shared: Arc::default(),
                    release_port: None,
                },
            ])
        };
        let mut buffer = [0_u8; 16];
        // A relay that has been running a while: a first call's packet went through.
        let first_in_address = first_in.local_addr().unwrap();
        plane.send(legs([0, 1], [first_in, first_out], &Arc::default()));
        phone.send_to(b"first", first_in_address).unwrap();
        let (len, _) = receiver.recv_from(&mut buffer).expect("first call relayed");
        assert_eq!(&buffer[..len], b"first");
        // Queued on the near socket before the data plane knows the leg.
        let near_address = near.local_addr().unwrap();
        for sequence in 0..PACKETS {
            phone.send_to(&[sequence], near_address).unwrap();
        }
        let shared = Arc::new(LegShared::default());
        plane.send(legs([2, 3], [near, far], &shared));
        for sequence in 0..PACKETS {
            let (len, from) = receiver
                .recv_from(&mut buffer)
                .unwrap_or_else(|error| panic!("packet {sequence} not relayed: {error}"));
            assert_eq!((&buffer[..len], from.port()), (&[sequence][..], base + 2));
        }
        let counters = shared.counters();
        assert_eq!((counters.packets, counters.errors), (u64::from(PACKETS), 0));
    }

    #[test]
    fn a_former_peer_is_refused_until_its_time_runs_out_unless_the_sdp_names_it() {
        let old_latched: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let old_advertised: SocketAddr = "192.0.2.1:4002".parse().unwrap();
        let new_party: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let former = FormerPeer {
            endpoints: [Some(old_latched), Some(old_advertised)],
            until_ms: 30_000,
        };
        for source in [old_latched, old_advertised] {
            assert!(former.refuses(source, Some(new_party), 0));
            assert!(former.refuses(source, None, 29_999));
            assert!(!former.refuses(source, Some(new_party), 30_000), "over");
        }
        assert!(!former.refuses(new_party, Some(new_party), 10));
        assert!(!former.refuses(new_party, None, 10), "anyone else latches");
        // The new call's own SDP names the old endpoint (a phone calling again from the same
        // port): its packets are the new call's.
        assert!(!former.refuses(old_latched, Some(old_latched), 10));
    }
}
