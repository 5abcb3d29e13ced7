//! A datagram network in virtual time for the simulation tests of sans-IO SIP code
//! (transactions, dialogs, the B2BUA core): datagrams are lost, duplicated and delayed as a
//! [`LinkModel`] says, with randomness from a seeded generator the test passes in, and are
//! delivered in time order (equal times keep send order). No sockets and no clock: the test
//! owns `now`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_core::RngCore;

/// How the network treats datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram that is not lost arrives twice.
    pub duplication: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay (each copy draws its own delay in between).
    pub max_delay: Duration,
}

impl LinkModel {
    /// No loss, no duplication, 10 ms each way.
    pub const CLEAN: LinkModel = LinkModel {
        loss: 0.0,
        duplication: 0.0,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    };
}

/// Datagrams on their way.
#[derive(Debug)]
pub struct Wire<R> {
    model: LinkModel,
    rng: R,
    /// Ordered by (delivery time, sequence number).
    in_flight: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Bytes)>,
    sequence: u64,
}

/// `true` with probability `probability` (never for 0, always for 1).
fn chance(rng: &mut impl RngCore, probability: f64) -> bool {
    if probability <= 0.0 {
        return false;
    }
    // 53 random bits as a fraction in [0, 1).
    let fraction = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    fraction < probability
}

impl<R: RngCore> Wire<R> {
    /// An empty network behaving as `model`.
    pub fn new(model: LinkModel, rng: R) -> Self {
        Self {
            model,
            rng,
            in_flight: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// How this network treats datagrams.
    pub fn model(&self) -> LinkModel {
        self.model
    }

    /// Puts `payload` on the wire at `now`; returns how many copies will arrive (0 when lost).
    pub fn carry(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: Bytes) -> u8 {
        if chance(&mut self.rng, self.model.loss) {
            return 0;
        }
        let copies = if chance(&mut self.rng, self.model.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.delay();
            self.sequence += 1;
            self.in_flight
                .insert((now + delay, self.sequence), (from, to, payload.clone()));
        }
        copies
    }

    fn delay(&mut self) -> Duration {
        let span = self.model.max_delay.saturating_sub(self.model.min_delay);
        if span.is_zero() {
            return self.model.min_delay;
        }
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        self.model.min_delay + Duration::from_nanos(self.rng.next_u64() % nanos.saturating_add(1))
    }

    /// When the next datagram arrives.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    /// The next datagram due at `now`: (from, to, payload).
    pub fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Bytes)> {
        let (&key, _) = self.in_flight.iter().next()?;
        if key.0 > now {
            return None;
        }
        self.in_flight.remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter as the "random" source: enough to check ordering and the clean model.
    struct Counter(u64);

    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0
        }
        fn fill_bytes(&mut self, bytes: &mut [u8]) {
            for byte in bytes {
                *byte = self.next_u64() as u8;
            }
        }
    }

    #[test]
    fn a_clean_link_delivers_each_datagram_once_after_its_delay_in_send_order() {
        let start = Instant::now();
        let mut wire = Wire::new(LinkModel::CLEAN, Counter(1));
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let b = SocketAddr::from(([127, 0, 0, 1], 2));
        assert_eq!(wire.carry(start, a, b, Bytes::from_static(b"one")), 1);
        assert_eq!(wire.carry(start, b, a, Bytes::from_static(b"two")), 1);
        assert_eq!(
            wire.next_delivery(),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(wire.pop_due(start + Duration::from_millis(9)), None);
        let due = start + Duration::from_millis(10);
        assert_eq!(wire.pop_due(due), Some((a, b, Bytes::from_static(b"one"))));
        assert_eq!(wire.pop_due(due), Some((b, a, Bytes::from_static(b"two"))));
        assert_eq!(wire.pop_due(due), None);
    }

    #[test]
    fn a_lossy_link_loses_and_duplicates_within_its_delay_bounds() {
        let start = Instant::now();
        let model = LinkModel {
            loss: 0.5,
            duplication: 0.5,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        };
        let mut wire = Wire::new(model, Counter(7));
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let copies: Vec<u8> = (0..1000)
            .map(|_| wire.carry(start, a, a, Bytes::from_static(b"x")))
            .collect();
        assert!(copies.contains(&0) && copies.contains(&1) && copies.contains(&2));
        let mut delivered = 0;
        while let Some(at) = wire.next_delivery() {
            assert!(at >= start + model.min_delay && at <= start + model.max_delay);
            wire.pop_due(at).unwrap();
            delivered += 1;
        }
        assert_eq!(
            delivered,
            copies.iter().map(|&n| usize::from(n)).sum::<usize>()
        );
    }
}
