//! What the control side sees of a leg: its counters, latched source and kernel route,
//! written by the data-plane thread and read by `query` and the media-timeout check.

use super::*;

/// What the control side can see of one leg. Only the data-plane thread writes the counters,
/// so plain load/store (no read-modify-write) is enough and keeps the hot path cheap.
#[derive(Debug, Default)]
pub struct LegShared {
    packets: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since the relay's epoch of the last accepted packet, plus one (0 = never).
    pub(super) last_packet: AtomicU64,
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
pub(super) struct KernelRoute {
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

    pub(super) fn kernel_guard(&self) -> std::sync::MutexGuard<'_, KernelRoute> {
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
    pub(super) fn kernel_stopped(&self) -> bool {
        self.kernel_guard().stopped
    }

    /// The kernel now relays this leg's packets arriving at `port`, just installed. False, with
    /// the route removed again, when the control side ended the leg meanwhile: the route went
    /// in after its check, and either it sees the route here or this sees its mark.
    pub(super) fn set_kernel(&self, table: Arc<ForwardingTable>, port: u16) -> bool {
        let mut kernel = self.kernel_guard();
        if kernel.stopped {
            table.remove(port);
            return false;
        }
        kernel.route = Some((table, port));
        true
    }

    /// The kernel route is gone: its counts become the leg's own.
    pub(super) fn fold_kernel(&self) {
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

    pub(super) fn set_latched(&self, source: Option<SocketAddr>) {
        match self.latched.lock() {
            Ok(mut latched) => *latched = source,
            Err(poisoned) => *poisoned.into_inner() = source,
        }
    }

    pub(super) fn add(&self, counter: &AtomicU64, amount: u64) {
        if amount != 0 {
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(amount),
                Ordering::Relaxed,
            );
        }
    }

    pub(super) fn record(&self, packets: u64, bytes: u64, errors: u64, now_ms: u64) {
        self.add(&self.packets, packets);
        self.add(&self.bytes, bytes);
        self.add(&self.errors, errors);
        if packets != 0 {
            self.last_packet.store(now_ms + 1, Ordering::Relaxed);
        }
    }
}
