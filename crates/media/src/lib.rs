//! The media relay (`voxide media`): rtpengine-compatible ng control over UDP and an RTP/RTCP
//! relay with endpoint latching, strict source checks, DSCP marking, per-stream counters and a
//! media timeout.
//!
//! Control runs as a tokio task ([`MediaRelay::start`]); the data plane runs on its own thread
//! with an epoll loop: by default every relay port's packets are steered into one socket by a
//! BPF `sk_lookup` program and read with `recvmmsg` across streams ([`IoMode::Steered`]), and
//! once a stream is latched a tc BPF program relays its packets in the kernel
//! ([`MediaConfig::kernel_forwarding`]). Without the capabilities for BPF the relay runs one
//! socket per port with `recvmmsg`/`sendmmsg` batching ([`IoMode::Batched`]); one syscall per
//! packet ([`IoMode::Simple`]) is kept for comparison.

mod bpf;
mod config;
mod control;
mod dataplane;
mod fastpath;
mod forwarding;
mod netlink;
mod ports;
mod server;
mod steering;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use config::{MediaConfig, TOS_EXPEDITED_FORWARDING};
pub use control::{Controller, MediaEvent};
pub use dataplane::{IoMode, THREAD_NAME};
pub use fastpath::receive_with_tos;
pub use ports::PortsExhausted;
pub use server::{ReplyCache, answer_datagram};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("media port range {min}-{max} holds no even/odd port pair")]
    InvalidPortRange { min: u16, max: u16 },
    #[error("cannot bind the ng control socket {address}: {source}")]
    BindControl {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("cannot start the media data plane: {0}")]
    DataPlane(#[source] io::Error),
}

/// Receive buffer of the ng socket: some 10,000 typical requests.
const NG_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// How many timeout notifications wait for a consumer before new ones are dropped.
const EVENT_QUEUE: usize = 1024;

/// A running relay. Dropping it stops the control task, which stops the data plane.
#[derive(Debug)]
pub struct MediaRelay {
    ng_address: SocketAddr,
    events: Option<mpsc::Receiver<MediaEvent>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MediaRelay {
    /// Binds the ng socket, starts the data-plane thread and the control task.
    ///
    /// # Errors
    /// [`StartError`] for an empty port range or when a socket or thread cannot be created.
    pub async fn start(config: MediaConfig) -> Result<Self, StartError> {
        let first_even = u32::from(config.port_min) + u32::from(config.port_min % 2);
        if first_even + 1 > u32::from(config.port_max) || first_even == 0 {
            return Err(StartError::InvalidPortRange {
                min: config.port_min,
                max: config.port_max,
            });
        }
        let socket =
            UdpSocket::bind(config.ng_address)
                .await
                .map_err(|source| StartError::BindControl {
                    address: config.ng_address,
                    source,
                })?;
        // Room for a burst of requests while the control task is busy (a full buffer drops
        // them, and a lost `delete` keeps a call's ports until its media times out).
        fastpath::force_receive_buffer(&socket2::SockRef::from(&socket), NG_RECEIVE_BUFFER);
        let ng_address = socket
            .local_addr()
            .map_err(|source| StartError::BindControl {
                address: config.ng_address,
                source,
            })?;
        let epoch = Instant::now();
        // Sweep often enough that a timeout fires within a quarter of its length.
        let sweep_interval =
            (config.media_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let cache = ReplyCache::new(config.cookie_cache_ttl, config.cookie_cache_capacity, epoch);
        let (events_sender, events) = mpsc::channel(EVENT_QUEUE);
        let controller = Controller::new(config, epoch).map_err(StartError::DataPlane)?;
        let server = server::Server {
            socket,
            controller,
            cache,
            events: events_sender,
            sweep_interval,
        };
        let (shutdown, shutdown_receiver) = oneshot::channel();
        let task = tokio::spawn(server.run(shutdown_receiver));
        Ok(MediaRelay {
            ng_address,
            events: Some(events),
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// Where the ng control protocol listens.
    #[must_use]
    pub fn ng_addr(&self) -> SocketAddr {
        self.ng_address
    }

    /// The media-timeout notifications (once; later calls return `None`).
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<MediaEvent>> {
        self.events.take()
    }

    /// Stops the control task and the data plane and waits for them.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
