//! One task per TCP or TLS connection: cuts the byte stream into messages (RFC 3261 §18.3),
//! answers keep-alive pings (RFC 5626 §4.4.1), writes queued messages, closes when idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use sip_core::response_routing;
use sip_message::stream::{Frame, frame};
use sip_message::{Message, ParseError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::event::{CloseReason, ReceivedMessage, TransportEvent};
use crate::flow::{ConnectionId, Flow, TransportProtocol};
use crate::stateless::stateless_error_response;
use crate::transport::Shared;

/// Bytes read from a connection at a time. The stream buffer never holds more than the larger
/// of the message and header section limits plus `READ_CHUNK` bytes.
pub const READ_CHUNK: usize = 16 * 1024;

/// Work for a connection task.
#[derive(Debug)]
pub(crate) enum ConnectionCommand {
    Send(Bytes),
    Close,
}

#[derive(Debug)]
pub(crate) struct ConnectionEntry {
    pub(crate) id: ConnectionId,
    pub(crate) flow: Flow,
    pub(crate) commands: mpsc::Sender<ConnectionCommand>,
}

/// Open connections, by id and by (transport, remote address), so a response or a later request
/// to the same peer reuses the connection (RFC 3261 §18.2.2, §18.1.1).
#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    by_id: HashMap<ConnectionId, ConnectionEntry>,
    by_remote: HashMap<(TransportProtocol, SocketAddr), ConnectionId>,
}

impl ConnectionTable {
    pub(crate) fn insert(&mut self, entry: ConnectionEntry) {
        let flow = entry.flow;
        self.by_remote
            .insert((flow.transport, flow.remote), entry.id);
        self.by_id.insert(entry.id, entry);
    }

    pub(crate) fn remove(&mut self, id: ConnectionId) {
        if let Some(entry) = self.by_id.remove(&id) {
            let key = (entry.flow.transport, entry.flow.remote);
            if self.by_remote.get(&key) == Some(&id) {
                self.by_remote.remove(&key);
            }
        }
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<&ConnectionEntry> {
        self.by_id.get(&id)
    }

    pub(crate) fn find(
        &self,
        transport: TransportProtocol,
        remote: SocketAddr,
    ) -> Option<&ConnectionEntry> {
        let id = self.by_remote.get(&(transport, remote))?;
        self.by_id.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn flows(&self) -> Vec<Flow> {
        self.by_id.values().map(|entry| entry.flow).collect()
    }
}

/// Runs a connection until it closes, then removes it from the table and reports why.
pub(crate) async fn run_connection<S>(
    stream: S,
    flow: Flow,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<ConnectionCommand>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reason = drive(stream, flow, &shared, commands).await;
    tracing::debug!(%flow.remote, connection = ?flow.connection, ?reason, "connection closed");
    if let Some(id) = flow.connection {
        shared.lock_connections().remove(id);
    }
    // The owner may be gone already; nobody is left to tell then.
    let _ = shared
        .events
        .send(TransportEvent::ConnectionClosed { flow, reason })
        .await;
}

async fn drive<S>(
    mut stream: S,
    flow: Flow,
    shared: &Shared,
    mut commands: mpsc::Receiver<ConnectionCommand>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &shared.config;
    let mut buffer = BytesMut::new();
    let mut keep_alive = KeepAlive::default();
    let mut chunk = vec![0u8; READ_CHUNK];
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            read = stream.read(&mut chunk) => {
                let count = match read {
                    Ok(0) => return CloseReason::PeerClosed,
                    Ok(count) => count,
                    Err(error) => return CloseReason::Io(error.kind()),
                };
                idle.as_mut().reset(Instant::now() + config.idle_timeout);
                buffer.extend_from_slice(&chunk[..count]);
                if let Err(reason) = deliver_frames(&mut stream, &mut buffer, &mut keep_alive, flow, shared).await {
                    let _ = stream.shutdown().await;
                    return reason;
                }
            }
            command = commands.recv() => match command {
                Some(ConnectionCommand::Send(message)) => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    if let Err(error) = write(&mut stream, &message).await {
                        return CloseReason::Io(error.kind());
                    }
                }
                Some(ConnectionCommand::Close) | None => {
                    let _ = stream.shutdown().await;
                    return CloseReason::Requested;
                }
            },
            () = &mut idle => {
                let _ = stream.shutdown().await;
                return CloseReason::IdleTimeout;
            }
        }
    }
}

/// Writes and flushes: TLS keeps encrypted records buffered until flushed.
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Counts CRLF bytes between messages to tell a double-CRLF ping from a single-CRLF pong, even
/// when a ping arrives in two reads (RFC 5626 §4.4.1).
#[derive(Debug, Default)]
struct KeepAlive {
    line_end_bytes: usize,
}

impl KeepAlive {
    /// Records `count` CR/LF bytes; returns how many pongs are owed.
    fn record(&mut self, count: usize) -> usize {
        self.line_end_bytes += count;
        let pings = self.line_end_bytes / 4;
        self.line_end_bytes %= 4;
        pings
    }
}

/// Hands every complete message at the front of `buffer` to the owner and answers pings.
async fn deliver_frames<S>(
    stream: &mut S,
    buffer: &mut BytesMut,
    keep_alive: &mut KeepAlive,
    flow: Flow,
    shared: &Shared,
) -> Result<(), CloseReason>
where
    S: AsyncWrite + Unpin,
{
    let limits = &shared.config.limits;
    loop {
        let message = match frame(buffer, limits) {
            Ok(Frame::Incomplete) => return Ok(()),
            Ok(Frame::KeepAlive(length)) => {
                buffer.advance(length);
                for _ in 0..keep_alive.record(length) {
                    // RFC 5626 §4.4.1: a double CRLF ping is answered with a single CRLF pong.
                    write(stream, b"\r\n")
                        .await
                        .map_err(|error| CloseReason::Io(error.kind()))?;
                }
                continue;
            }
            Ok(Frame::Complete(length)) => {
                *keep_alive = KeepAlive::default();
                // Copied out rather than split off, so a message the application keeps pins
                // only its own bytes and the stream buffer's space is reused.
                let bytes = Bytes::copy_from_slice(&buffer[..length]);
                buffer.advance(length);
                parse(bytes.clone(), shared, flow.remote).map_err(|error| (error, bytes))
            }
            Err(error) => Err((error, buffer.split().freeze())),
        };
        match message {
            Ok(message) => {
                let event = TransportEvent::Message(Box::new(ReceivedMessage { flow, message }));
                if shared.events.send(event).await.is_err() {
                    return Err(CloseReason::Requested);
                }
            }
            Err((error, bytes)) => {
                let response =
                    stateless_error_response(&bytes, error.status_code(), &error.reason_phrase());
                let answered = match response {
                    Some(response) => write(stream, &response).await.is_ok(),
                    None => false,
                };
                tracing::debug!(%flow.remote, %error, answered, "malformed message on stream");
                let _ = shared
                    .events
                    .send(TransportEvent::Rejected {
                        flow,
                        error: error.clone(),
                        answered,
                    })
                    .await;
                // RFC 4475 §3.1.2: after a malformed message on a stream nothing that follows
                // can be trusted to start at a message boundary, so the connection closes.
                return Err(CloseReason::Malformed(error));
            }
        }
    }
}

/// Parses and validates one framed message (RFC 3261 §7, §8.1.1) and, for a request, stamps
/// its top Via with where it really came from.
pub(crate) fn parse(
    bytes: Bytes,
    shared: &Shared,
    source: SocketAddr,
) -> Result<Message, ParseError> {
    let mut message = Message::parse_with_limits(bytes, &shared.config.limits)?;
    message.validate()?;
    if message.is_request() {
        stamp_received(&mut message, source);
    }
    Ok(message)
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: the server transport adds `received` (and fills `rport`)
/// on the top Via, so responses and proxies downstream know the real source address.
fn stamp_received(message: &mut Message, source: SocketAddr) {
    // validate() has checked the Via; a value sip-core still cannot use (e.g. not UTF-8) is
    // left as received rather than dropping an otherwise valid request.
    // The borrowed view: no copy of the Via into a TopVia per received request.
    let Some(stamped) = message
        .top_via()
        .ok()
        .and_then(|via| response_routing::stamp_received_text(&via, source))
    else {
        return;
    };
    message.pop_via();
    message.push_via(stamped);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{CloseReason, TransportConfig, TransportEvent, TransportProtocol, Transports};

    /// A peer streaming header bytes without an empty line is cut off after the header section
    /// limit plus one read; the in-memory pipe holds at most `PIPE` more, so the bytes the peer
    /// manages to write bound what the connection ever buffered.
    #[tokio::test]
    async fn endless_header_section_is_refused_with_bounded_memory() {
        const PIPE: usize = 4096;
        let (transports, mut events) = Transports::new(TransportConfig::default());
        let limit = transports.config().limits.max_header_section_size;
        let (server, mut client) = tokio::io::duplex(PIPE);
        let address = "127.0.0.1:5999".parse().unwrap();
        transports.adopt_connection(server, TransportProtocol::Tcp, address, address);
        let writer = tokio::spawn(async move {
            let mut written = 0usize;
            let mut chunk = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
            chunk.resize(1024, b'h');
            while written < 1024 * 1024 {
                if client.write_all(&chunk).await.is_err() {
                    break;
                }
                written += chunk.len();
            }
            written
        });
        let rejected = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        let TransportEvent::Rejected {
            error, answered, ..
        } = rejected
        else {
            panic!("expected a rejection, got {rejected:?}");
        };
        assert_eq!(
            error,
            sip_message::ParseError::HeaderSectionTooLarge { limit }
        );
        assert!(!answered, "no Via was readable, so nothing can be answered");
        let closed = events.recv().await.unwrap();
        assert!(matches!(
            closed,
            TransportEvent::ConnectionClosed {
                reason: CloseReason::Malformed(_),
                ..
            }
        ));
        let written = writer.await.unwrap();
        assert!(
            written <= limit + super::READ_CHUNK + PIPE + 1024,
            "peer wrote {written} bytes before the close"
        );
        assert_eq!(transports.connection_count(), 0);
    }

    #[tokio::test]
    async fn ping_split_over_two_reads_still_gets_one_pong() {
        let (transports, _events) = Transports::new(TransportConfig::default());
        let (server, mut client) = tokio::io::duplex(1024);
        let address = "127.0.0.1:5999".parse().unwrap();
        transports.adopt_connection(server, TransportProtocol::Tcp, address, address);
        client.write_all(b"\r\n").await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(b"\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        client.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\r\n");
        // A single CRLF (a pong from the peer) is not answered.
        client.write_all(b"\r\n").await.unwrap();
        let mut more = [0u8; 1];
        let nothing =
            tokio::time::timeout(Duration::from_millis(100), client.read(&mut more)).await;
        assert!(nothing.is_err(), "a lone CRLF must not be answered");
    }
}
