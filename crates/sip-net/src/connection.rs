//! One task per TCP or TLS connection: cuts the byte stream into messages (RFC 3261 §18.3),
//! answers keep-alive pings (RFC 5626 §4.4.1), writes queued messages, closes when idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::event::{CloseReason, ReceivedMessage, TransportEvent};
use crate::flow::{ConnectionId, Flow, TransportProtocol};
use crate::framing::{Frame, FrameStatus, frame_stream, stateless_error_response};
use crate::transport::Shared;

/// Bytes read from a connection at a time. The stream buffer never holds more than
/// `max_message_size + READ_CHUNK` bytes.
pub const READ_CHUNK: usize = 16 * 1024;

/// Work for a connection task.
#[derive(Debug)]
pub(crate) enum ConnectionCommand {
    Send(Bytes),
    Close,
}

#[derive(Debug)]
pub(crate) struct ConnectionEntry {
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
        if let Some(id) = flow.connection {
            self.by_remote.insert((flow.transport, flow.remote), id);
            self.by_id.insert(id, entry);
        }
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
                if let Err(reason) = deliver_frames(&mut stream, &mut buffer, flow, shared).await {
                    let _ = stream.shutdown().await;
                    return reason;
                }
            }
            command = commands.recv() => match command {
                Some(ConnectionCommand::Send(message)) => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    if let Err(error) = stream.write_all(&message).await {
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

/// Hands every complete message at the front of `buffer` to the owner and answers pings.
async fn deliver_frames<S>(
    stream: &mut S,
    buffer: &mut BytesMut,
    flow: Flow,
    shared: &Shared,
) -> Result<(), CloseReason>
where
    S: AsyncWrite + Unpin,
{
    loop {
        match frame_stream(buffer, shared.config.max_message_size) {
            Ok(FrameStatus::Incomplete) => return Ok(()),
            Ok(FrameStatus::Complete(Frame::Message { length })) => {
                let bytes = buffer.split_to(length).freeze();
                let message = TransportEvent::Message(ReceivedMessage { flow, bytes });
                if shared.events.send(message).await.is_err() {
                    return Err(CloseReason::Requested);
                }
            }
            Ok(FrameStatus::Complete(Frame::KeepAlivePing { length })) => {
                buffer.advance(length);
                // RFC 5626 §4.4.1: a double CRLF ping is answered with a single CRLF pong.
                stream
                    .write_all(b"\r\n")
                    .await
                    .map_err(|error| CloseReason::Io(error.kind()))?;
            }
            Ok(FrameStatus::Complete(Frame::StrayLineEnd { length })) => buffer.advance(length),
            Err(error) => {
                let response =
                    stateless_error_response(buffer, error.status_code(), error.reason_phrase());
                let answered = match response {
                    Some(response) => stream.write_all(&response).await.is_ok(),
                    None => false,
                };
                let _ = shared
                    .events
                    .send(TransportEvent::Rejected {
                        flow,
                        error: error.clone(),
                        answered,
                    })
                    .await;
                // RFC 4475 §3.1.2.x: after a framing fault on a stream nothing that follows can
                // be trusted to start at a message boundary, so the connection closes.
                return Err(CloseReason::Framing(error));
            }
        }
    }
}
