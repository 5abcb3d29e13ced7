//! What the transports report to their owner.

use bytes::Bytes;

use crate::flow::Flow;
use crate::framing::FramingError;

/// One complete SIP message as received: framed, its body cut to `Content-Length`, not yet
/// parsed.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// How it came in; hand this to [`Destination::Flow`](crate::Destination::Flow) to answer on
    /// the same connection.
    pub flow: Flow,
    pub bytes: Bytes,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end.
    PeerClosed,
    /// No traffic for the configured idle time.
    IdleTimeout,
    /// The peer sent bytes that cannot be cut into messages (RFC 4475 §3.1.2: close the stream).
    Framing(FramingError),
    /// The owner asked for it (e.g. after a malformed message).
    Requested,
    /// Reading or writing failed.
    Io(std::io::ErrorKind),
}

/// Everything the transports deliver, in the order it happened per socket or connection.
#[derive(Debug, Clone)]
pub enum TransportEvent {
    Message(ReceivedMessage),
    /// Bytes were refused before parsing. When `answered` is true a stateless error response
    /// (status and reason from `error`) went back to the sender.
    Rejected {
        flow: Flow,
        error: FramingError,
        answered: bool,
    },
    /// A TCP or TLS connection was closed and removed from the connection table.
    ConnectionClosed { flow: Flow, reason: CloseReason },
}
