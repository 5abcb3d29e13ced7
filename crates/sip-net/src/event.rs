//! What the transports report to their owner.

use sip_message::{Message, ParseError};

use crate::flow::Flow;

/// One SIP message as received: framed, parsed and validated (`Message::validate`), so the
/// headers a transaction needs are known to be there.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// How it came in; hand this to [`Destination::Flow`](crate::Destination::Flow) to answer on
    /// the same connection.
    pub flow: Flow,
    pub message: Message,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end.
    PeerClosed,
    /// No traffic for the configured idle time.
    IdleTimeout,
    /// The peer sent a message that could not be framed or parsed; after that nothing on the
    /// stream can be trusted to start at a message boundary (RFC 4475 §3.1.2).
    Malformed(ParseError),
    /// The owner asked for it (e.g. after a malformed message).
    Requested,
    /// Reading or writing failed.
    Io(std::io::ErrorKind),
}

/// Everything the transports deliver, in the order it happened per socket or connection.
#[derive(Debug, Clone)]
pub enum TransportEvent {
    /// Boxed: a parsed message is large and the other events are small.
    Message(Box<ReceivedMessage>),
    /// Bytes that are not a valid message. When `answered` is true a stateless error response
    /// (status and reason from `error`) went back to the sender; on streams the connection is
    /// closed next.
    Rejected {
        flow: Flow,
        error: ParseError,
        answered: bool,
    },
    /// A TCP or TLS connection was closed and removed from the connection table.
    ConnectionClosed { flow: Flow, reason: CloseReason },
}
