//! The ng control server: one tokio task reading `<cookie> <dict>` datagrams, replaying cached
//! replies for repeated cookies, and sweeping timed-out and deleted calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ng_protocol::{Reply, parse_request, split_message};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::control::{Controller, MediaEvent};

/// Largest ng datagram (the UDP maximum, as rtpengine reads).
const MAX_DATAGRAM: usize = 65_535;

/// Replies by cookie, in two generations rotated every `ttl`, so an entry lives between one
/// and two `ttl`s (rtpengine keeps 30–60 s). Kamailio resends after 1 s, so a retransmission
/// must get the same bytes and never be processed twice. Bounded: a full generation rotates
/// early, so a cookie flood costs at most twice `capacity` entries.
#[derive(Debug)]
pub struct ReplyCache {
    ttl: Duration,
    capacity: usize,
    current: HashMap<Vec<u8>, Arc<[u8]>>,
    previous: HashMap<Vec<u8>, Arc<[u8]>>,
    rotated_at: Instant,
}

impl ReplyCache {
    /// An empty cache.
    #[must_use]
    pub fn new(ttl: Duration, capacity: usize, now: Instant) -> Self {
        ReplyCache {
            ttl,
            capacity: capacity.max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
            rotated_at: now,
        }
    }

    /// The cached reply for `cookie`.
    #[must_use]
    pub fn get(&self, cookie: &[u8]) -> Option<Arc<[u8]>> {
        self.current
            .get(cookie)
            .or_else(|| self.previous.get(cookie))
            .cloned()
    }

    /// Remembers a reply.
    pub fn insert(&mut self, cookie: &[u8], reply: Arc<[u8]>, now: Instant) {
        self.expire(now);
        if self.current.len() >= self.capacity {
            self.rotate(now);
        }
        self.current.insert(cookie.to_vec(), reply);
    }

    /// Rotates generations whose time is up.
    pub fn expire(&mut self, now: Instant) {
        if now.saturating_duration_since(self.rotated_at) >= self.ttl {
            self.rotate(now);
            if now.saturating_duration_since(self.rotated_at) >= self.ttl {
                self.previous.clear();
            }
        }
    }

    fn rotate(&mut self, now: Instant) {
        self.previous = std::mem::take(&mut self.current);
        self.rotated_at = now;
    }

    /// Entries held (both generations).
    #[must_use]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Answers one datagram; `None` when it is not an ng message (no cookie to answer with).
pub fn answer_datagram(
    controller: &mut Controller,
    cache: &mut ReplyCache,
    datagram: &[u8],
    now: Instant,
) -> Option<Arc<[u8]>> {
    let message = split_message(datagram).ok()?;
    if let Some(cached) = cache.get(message.cookie) {
        return Some(cached);
    }
    let reply = match parse_request(message.payload) {
        Ok(command) => controller.handle_at(command, now),
        Err(error) => {
            tracing::debug!(%error, "ng request refused");
            Reply::error(error)
        }
    };
    let bytes: Arc<[u8]> = reply.frame(message.cookie).into();
    cache.insert(message.cookie, bytes.clone(), now);
    Some(bytes)
}

pub(crate) struct Server {
    pub socket: UdpSocket,
    pub controller: Controller,
    pub cache: ReplyCache,
    pub events: mpsc::Sender<MediaEvent>,
    pub sweep_interval: Duration,
}

impl Server {
    pub async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let mut buffer = vec![0_u8; MAX_DATAGRAM];
        let mut sweep = tokio::time::interval(self.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = sweep.tick() => {
                    let now = Instant::now();
                    self.cache.expire(now);
                    for event in self.controller.sweep(now) {
                        if self.events.try_send(event).is_err() {
                            tracing::warn!("media event dropped: no consumer or queue full");
                        }
                    }
                }
                received = self.socket.recv_from(&mut buffer) => {
                    let (len, from) = match received {
                        Ok(received) => received,
                        Err(error) => {
                            // e.g. ICMP port unreachable from an earlier reply: keep serving
                            tracing::debug!(%error, "ng socket receive error");
                            continue;
                        }
                    };
                    let reply = answer_datagram(
                        &mut self.controller,
                        &mut self.cache,
                        &buffer[..len],
                        Instant::now(),
                    );
                    if let Some(reply) = reply
                        && let Err(error) = self.socket.send_to(&reply, from).await
                    {
                        tracing::warn!(%error, %from, "cannot send ng reply");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_entries_one_to_two_ttls_and_is_bounded() {
        let start = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut cache = ReplyCache::new(ttl, 2, start);
        cache.insert(b"a", Arc::from(&b"A"[..]), start);
        assert_eq!(cache.get(b"a").as_deref(), Some(&b"A"[..]));
        cache.expire(start + Duration::from_secs(31));
        assert_eq!(
            cache.get(b"a").as_deref(),
            Some(&b"A"[..]),
            "previous generation"
        );
        cache.expire(start + Duration::from_secs(62));
        assert_eq!(cache.get(b"a"), None, "gone after two generations");
        // capacity 2: a third insert rotates, a fifth drops the first two
        let now = start + Duration::from_secs(62);
        for cookie in [b"1", b"2", b"3", b"4", b"5"] {
            cache.insert(cookie, Arc::from(&cookie[..]), now);
        }
        assert!(cache.len() <= 4);
        assert_eq!(cache.get(b"1"), None);
        assert!(cache.get(b"5").is_some());
    }
}
