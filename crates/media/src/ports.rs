//! Relay port pairs: even RTP port, odd RTCP port (RFC 3550 §11), from a configured range.
//!
//! A pair is only handed out once both sockets are bound, so a port held by another program is
//! skipped rather than shared; running out is an error the ng reply reports.
//!
//! A deleted call's pairs come back as soon as the data plane has closed their sockets, not
//! after the delete delay: free pairs wait in a FIFO, so a pair just freed is reused only after
//! every pair freed before it — as late as the range allows. Late packets of the old call that
//! still reach a reused port are kept from its new owner by the data plane (see
//! `dataplane::FormerPeer`).

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// No free pair in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Ran out of ports")]
pub struct PortsExhausted;

/// Two bound, non-blocking sockets with the TOS byte set.
#[derive(Debug)]
pub struct PortPair {
    pub rtp_port: u16,
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

/// Where the data plane reports RTP ports whose sockets it has closed; an allocation that
/// found the range exhausted waits on it.
#[derive(Debug, Default)]
pub struct ReleasedPorts {
    ports: Mutex<Vec<u16>>,
    closed: Condvar,
}

impl ReleasedPorts {
    fn lock(&self) -> MutexGuard<'_, Vec<u16>> {
        self.ports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports pairs (by RTP port) whose sockets are closed.
    pub fn push(&self, ports: impl IntoIterator<Item = u16>) {
        let mut released = self.lock();
        let before = released.len();
        released.extend(ports);
        if released.len() > before {
            self.closed.notify_all();
        }
    }

    fn take(&self) -> Vec<u16> {
        std::mem::take(&mut *self.lock())
    }

    /// What was reported, waiting at most `timeout` for something to be.
    fn wait_take(&self, timeout: Duration) -> Vec<u16> {
        let released = self.lock();
        let (mut released, _) = self
            .closed
            .wait_timeout_while(released, timeout, |ports| ports.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *released)
    }
}

/// How long an allocation waits for the data plane to close sockets of deleted calls when the
/// range is otherwise exhausted (it takes microseconds; this bounds a stalled data plane).
const RELEASE_WAIT: Duration = Duration::from_millis(100);

/// The bookkeeping of the range, apart from sockets: free pairs (by RTP port) in the order
/// they were freed, and the pairs handed out.
#[derive(Debug)]
struct PortPool {
    free: VecDeque<u16>,
    in_use: HashSet<u16>,
}

impl PortPool {
    /// Pairs `(p, p+1)` with even `p`, `min <= p`, `p + 1 <= max`.
    fn new(min: u16, max: u16) -> Self {
        let first = min.saturating_add(min % 2);
        let free = (u32::from(first)..u32::from(max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .collect();
        PortPool {
            free,
            in_use: HashSet::new(),
        }
    }

    /// The longest-free pair that `bind` takes, now in use. A pair `bind` refuses (a port held
    /// by another program, say) goes to the back of the queue.
    fn take<T>(&mut self, mut bind: impl FnMut(u16) -> Option<T>) -> Option<(u16, T)> {
        for _ in 0..self.free.len() {
            let port = self.free.pop_front()?;
            if let Some(bound) = bind(port) {
                self.in_use.insert(port);
                return Some((port, bound));
            }
            self.free.push_back(port);
        }
        None
    }

    /// Puts a pair in use at the back of the queue; false for a pair not in use.
    fn give_back(&mut self, port: u16) -> bool {
        let was_in_use = self.in_use.remove(&port);
        if was_in_use {
            self.free.push_back(port);
        }
        was_in_use
    }
}

/// Hands out port pairs, least recently freed first. A pair of a removed call returns to the
/// pool only when the data plane has closed its sockets (reported through [`ReleasedPorts`]).
#[derive(Debug)]
pub struct PortAllocator {
    address: IpAddr,
    tos: u8,
    pool: PortPool,
    released: std::sync::Arc<ReleasedPorts>,
    /// Pairs handed back to the data plane whose sockets are not closed yet.
    closing: usize,
}

impl PortAllocator {
    /// Pairs `(p, p+1)` with even `p`, `min <= p`, `p + 1 <= max`.
    #[must_use]
    pub fn new(address: IpAddr, min: u16, max: u16, tos: u8) -> Self {
        PortAllocator {
            address,
            tos,
            pool: PortPool::new(min, max),
            released: std::sync::Arc::default(),
            closing: 0,
        }
    }

    /// The queue the data plane reports closed RTP ports to.
    #[must_use]
    pub fn released_ports(&self) -> std::sync::Arc<ReleasedPorts> {
        self.released.clone()
    }

    /// Marks pairs as going back: their sockets were handed to the data plane for closing.
    pub fn closing(&mut self, pairs: usize) {
        self.closing += pairs;
    }

    fn give_back_closed(&mut self, ports: Vec<u16>) {
        for port in ports {
            self.closing = self.closing.saturating_sub(1);
            self.release(port);
        }
    }

    /// Pairs currently handed out.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.pool.in_use.len()
    }

    /// Binds the longest-free pair.
    ///
    /// # Errors
    /// [`PortsExhausted`] when every pair is in use or cannot be bound.
    pub fn allocate(&mut self) -> Result<PortPair, PortsExhausted> {
        let closed = self.released.take();
        self.give_back_closed(closed);
        if let Some(pair) = self.try_allocate() {
            return Ok(pair);
        }
        // Deleted calls' sockets are still open in the data plane: it closes them within
        // microseconds, so wait for that rather than refuse the call.
        let deadline = Instant::now() + RELEASE_WAIT;
        while self.closing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let closed = self.released.wait_take(left);
            self.give_back_closed(closed);
            if let Some(pair) = self.try_allocate() {
                return Ok(pair);
            }
        }
        Err(PortsExhausted)
    }

    fn try_allocate(&mut self) -> Option<PortPair> {
        let (address, tos) = (self.address, self.tos);
        // Busy (another program, or our own socket not yet closed): tried again later.
        let (rtp_port, (rtp, rtcp)) = self.pool.take(|port| {
            let rtp = bind(address, tos, port).ok()?;
            let rtcp = bind(address, tos, port + 1).ok()?;
            Some((rtp, rtcp))
        })?;
        Some(PortPair {
            rtp_port,
            rtp,
            rtcp,
        })
    }

    /// Returns a pair to the pool (its sockets must be closed).
    pub fn release(&mut self, rtp_port: u16) {
        self.pool.give_back(rtp_port);
    }
}

fn bind(address: IpAddr, tos: u8, port: u16) -> io::Result<UdpSocket> {
    let address = SocketAddr::new(address, port);
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Every relayed packet carries the TOS byte (DSCP EF by default).
    if address.is_ipv4() {
        socket.set_tos_v4(u32::from(tos))?;
    } else {
        socket.set_tclass_v6(u32::from(tos))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// A run of free ports from `base` up, below the kernel's ephemeral range (32768+) where
    /// other programs' port-0 binds land.
    fn free_even_range(mut base: u16, pairs: u16) -> u16 {
        loop {
            let all_free = (base..base + pairs * 2)
                .all(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
            if all_free {
                return base;
            }
            base += pairs * 2 + 2;
        }
    }

    #[test]
    fn pairs_are_even_odd_unique_and_run_out() {
        let base = free_even_range(21_000, 3);
        let mut allocator =
            PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base, base + 5, 184);
        let pairs: Vec<PortPair> = (0..3).map(|_| allocator.allocate().unwrap()).collect();
        let ports: HashSet<u16> = pairs.iter().map(|p| p.rtp_port).collect();
        assert_eq!(ports.len(), 3);
        for pair in &pairs {
            assert_eq!(pair.rtp_port % 2, 0);
            assert_eq!(pair.rtcp.local_addr().unwrap().port(), pair.rtp_port + 1);
            assert_eq!(socket2::SockRef::from(&pair.rtp).tos_v4().unwrap(), 184);
        }
        assert_eq!(allocator.allocate().unwrap_err(), PortsExhausted);
        assert_eq!(PortsExhausted.to_string(), "Ran out of ports");
        let first = pairs[0].rtp_port;
        drop(pairs);
        allocator.release(first);
        assert_eq!(allocator.allocate().unwrap().rtp_port, first);
    }

    #[test]
    fn odd_minimum_rounds_up() {
        let allocator = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 30001, 30006, 0);
        assert_eq!(allocator.pool.free, VecDeque::from(vec![30002, 30004]));
    }

    #[test]
    fn an_exhausted_range_waits_for_the_data_plane_to_close_a_deleted_calls_sockets() {
        let base = free_even_range(23_100, 1);
        let mut allocator = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base, base + 1, 0);
        let pair = allocator.allocate().unwrap();
        // Nothing is closing: refused at once.
        assert_eq!(allocator.allocate().unwrap_err(), PortsExhausted);
        // The call is removed: the data plane closes the sockets a moment later.
        allocator.closing(1);
        let released = allocator.released_ports();
        let data_plane = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(pair);
            released.push([base]);
        });
        assert_eq!(allocator.allocate().unwrap().rtp_port, base);
        data_plane.join().unwrap();
        // Closing ports never reported: the wait is bounded.
        allocator.closing(1);
        let started = Instant::now();
        assert_eq!(allocator.allocate().unwrap_err(), PortsExhausted);
        assert!(started.elapsed() >= RELEASE_WAIT);
    }

    #[test]
    fn freed_pairs_queue_behind_the_ones_freed_before() {
        let mut pool = PortPool::new(40_000, 40_007);
        let take = |pool: &mut PortPool| pool.take(|_| Some(())).map(|(port, ())| port);
        let taken: Vec<u16> = (0..4).filter_map(|_| take(&mut pool)).collect();
        assert_eq!(taken, [40_000, 40_002, 40_004, 40_006]);
        assert_eq!(take(&mut pool), None);
        for port in [40_004, 40_000, 40_006] {
            assert!(pool.give_back(port));
        }
        assert!(!pool.give_back(40_000), "a pair is given back once");
        assert_eq!(take(&mut pool), Some(40_004));
        assert!(pool.give_back(40_002));
        assert_eq!(take(&mut pool), Some(40_000));
        assert_eq!(take(&mut pool), Some(40_006));
        assert_eq!(take(&mut pool), Some(40_002));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Take a pair; the ports whose bit is set in the mask (by pair index) are busy.
        Take(u16),
        /// Give back the n-th held pair (modulo how many are held).
        Release(usize),
        /// Give back a pair that may not be held.
        ReleaseAny(u16),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => any::<u16>().prop_map(|mask| Op::Take(mask & 0x0fff)),
                2 => any::<usize>().prop_map(Op::Release),
                1 => (0_u16..16).prop_map(Op::ReleaseAny),
            ],
            1..200,
        )
    }

    const POOL_MIN: u16 = 50_000;
    const POOL_PAIRS: u16 = 12;

    proptest! {
        /// Against a model FIFO: no pair is handed out while held, the pair handed out is the
        /// one free the longest among those that bind, and a busy pair is never handed out.
        #[test]
        fn pool_never_shares_a_pair_and_reuses_the_longest_free(ops in ops()) {
            let mut pool = PortPool::new(POOL_MIN, POOL_MIN + POOL_PAIRS * 2 - 1);
            let mut model_free: VecDeque<u16> =
                (0..POOL_PAIRS).map(|i| POOL_MIN + i * 2).collect();
            let mut held: Vec<u16> = Vec::new();
            for op in ops {
                match op {
                    Op::Take(mask) => {
                        let busy = |port: u16| mask & (1 << ((port - POOL_MIN) / 2 % 16)) != 0;
                        let got = pool.take(|port| (!busy(port)).then_some(())).map(|(p, ())| p);
                        // The model: busy pairs rotate to the back in the order met.
                        let expected = model_free.iter().position(|&p| !busy(p)).map(|at| {
                            model_free.rotate_left(at);
                            model_free.pop_front().unwrap()
                        });
                        if expected.is_none() {
                            // Every free pair was tried once and went to the back: same order.
                            prop_assert!(model_free.iter().all(|&p| busy(p)));
                        }
                        prop_assert_eq!(got, expected);
                        if let Some(port) = got {
                            prop_assert!(!busy(port));
                            prop_assert!(!held.contains(&port), "{} handed out twice", port);
                            held.push(port);
                        }
                    }
                    Op::Release(index) => {
                        if !held.is_empty() {
                            let port = held.remove(index % held.len());
                            prop_assert!(pool.give_back(port));
                            model_free.push_back(port);
                        }
                    }
                    Op::ReleaseAny(pair) => {
                        let port = POOL_MIN + (pair % POOL_PAIRS) * 2;
                        let was_held = held.contains(&port);
                        prop_assert_eq!(pool.give_back(port), was_held);
                        if was_held {
                            held.retain(|&p| p != port);
                            model_free.push_back(port);
                        }
                    }
                }
                prop_assert_eq!(&pool.free, &model_free);
                prop_assert_eq!(pool.in_use.len(), held.len());
                prop_assert_eq!(pool.free.len() + held.len(), usize::from(POOL_PAIRS));
            }
        }
    }

    #[test]
    fn busy_port_is_skipped() {
        let base = free_even_range(23_000, 2);
        let _blocker = UdpSocket::bind((Ipv4Addr::LOCALHOST, base + 1)).unwrap();
        let mut allocator = PortAllocator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base, base + 3, 0);
        assert_eq!(allocator.allocate().unwrap().rtp_port, base + 2);
        assert_eq!(allocator.allocate().unwrap_err(), PortsExhausted);
    }
}
