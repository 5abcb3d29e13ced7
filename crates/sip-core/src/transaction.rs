//! SIP transactions (RFC 3261 §17) with the RFC 6026 corrections, as sans-IO state machines.
//!
//! Each of the four machines — [`ClientInviteTransaction`], [`ClientNonInviteTransaction`],
//! [`ServerInviteTransaction`], [`ServerNonInviteTransaction`] — is driven the way quinn-proto
//! drives a connection: inputs are method calls carrying the current time (`handle_message`,
//! `handle_timeout`, `handle_transport_error`, `send_response`), outputs are pulled with
//! `poll_transmit` (bytes to send), `poll_timeout` (when to call `handle_timeout` next) and
//! `poll_event` (what the transaction user must learn). Nothing here reads a clock, opens a socket
//! or draws from a thread RNG.
//!
//! [`TransactionLayer`] owns all transactions of one endpoint, matches incoming messages to them
//! (RFC 3261 §17.1.3, §17.2.3, including the RFC 2543 fallback) and keeps one timer heap for all.
//!
//! [`make_response`], [`make_ack_for_non_2xx`], [`make_cancel`], [`new_branch`] and [`new_tag`]
//! build the messages the transaction user and the transactions need.
//!
//! A driver (socket + clock) uses the layer like this:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use bytes::Bytes;
//! use sip_core::transaction::{Incoming, Reliability, TransactionLayer, make_response};
//! use sip_message::Message;
//!
//! let mut layer = TransactionLayer::default();
//! let now = Instant::now(); // the driver's clock; the layer never reads one
//! let source: SocketAddr = "192.0.2.1:5060".parse().unwrap();
//! let datagram = Bytes::from_static(
//!     b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\r\n\
//!       To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=9fxced76sl\r\n\
//!       Call-ID: 3848276298220188511@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
//!       Content-Length: 0\r\n\r\n",
//! );
//! let message = Message::parse(datagram)?;
//! match layer.handle_incoming(now, message, source, Reliability::Unreliable)? {
//!     Incoming::NewRequest { id, request } => {
//!         let ok = make_response(&request, 200, "OK", Some(b"a6c85cf"));
//!         layer.send_response(now, id, ok)?;
//!     }
//!     _ => unreachable!("a first OPTIONS creates a server transaction"),
//! }
//! let transmit = layer.poll_transmit().expect("the 200 goes out");
//! assert_eq!(transmit.destination, source); // socket.send_to(&transmit.payload, …)
//! while let Some((_id, _event)) = layer.poll_event() { /* hand to the TU */ }
//! // Timer J keeps the transaction for retransmissions; sleep until then, then call
//! // `layer.handle_timeout(that_instant)`.
//! assert!(layer.poll_timeout().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client_invite;
mod client_non_invite;
mod key;
mod layer;
mod messages;
mod server_invite;
mod server_non_invite;
mod timer;

#[cfg(test)]
mod test_support;

use std::net::SocketAddr;

use bytes::Bytes;
use sip_message::Message;

pub use client_invite::{ClientInviteState, ClientInviteTransaction};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTransaction};
pub use key::{ClientKey, KeyError, MAGIC_COOKIE, Rfc2543Key, SentBy, ServerKey};
pub use layer::{Incoming, LayerConfig, TransactionId, TransactionLayer, TransactionState};
pub use messages::{
    make_ack_for_non_2xx, make_cancel, make_response, make_timeout_response, new_branch, new_tag,
};
pub use server_invite::{ServerInviteState, ServerInviteTransaction};
pub use server_non_invite::{ServerNonInviteState, ServerNonInviteTransaction};
pub use timer::{Reliability, Timer, TimerConfig};

/// A message a transaction wants sent: the serialised bytes and where they go.
///
/// For client transactions `destination` is the address the transaction user chose (after RFC 3263
/// resolution); for server transactions it is the source address of the request, which the
/// driver may refine with the RFC 3261 §18.2.2 / RFC 3581 rules in [`crate::response_routing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where the bytes go.
    pub destination: SocketAddr,
    /// The whole SIP message, ready for the wire.
    pub payload: Bytes,
}

/// What a transaction tells its transaction user (RFC 3261 §17: "passed up to the TU").
#[derive(Debug, Clone)]
pub enum Event {
    /// A response for the request of a client transaction: every provisional response, the first
    /// non-2xx final response, and every 2xx — also 2xx retransmissions and 2xx from other forks,
    /// which RFC 6026 §8.4 passes up in the Accepted state.
    Response(Message),
    /// An ACK that matched a server INVITE transaction in the Accepted state: it acknowledges a
    /// 2xx and belongs to the transaction user (RFC 6026 §8.7).
    Acknowledged(Message),
    /// The transaction gave up: Timer B or F for a client transaction (the TU should act as if a
    /// 408 arrived, RFC 3261 §8.1.3.1; see [`make_timeout_response`]), Timer H for a server INVITE
    /// transaction that never saw its ACK (RFC 3261 §17.2.1).
    Timeout(Timer),
    /// The driver reported a transport failure for this transaction (RFC 3261 §17.1.4, §17.2.4).
    TransportError,
    /// The transaction reached Terminated; it will never emit anything again.
    Terminated,
}

/// Why a transaction or the layer refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A header needed to match or build messages is missing or malformed.
    #[error("cannot match the message to a transaction: {0}")]
    Key(#[from] KeyError),
    /// The message is a response where a request was expected, or the reverse.
    #[error("expected a {expected}, got the other kind of message")]
    WrongMessageKind {
        /// "request" or "response".
        expected: &'static str,
    },
    /// ACK is never sent in a client transaction (RFC 3261 §17.1.1.3, §13.2.2.4).
    #[error("ACK does not create a client transaction; send it directly")]
    AckCreatesNoTransaction,
    /// The transaction user tried to send a response the state does not allow, e.g. a second
    /// final response (RFC 3261 §17.2.1, §17.2.2).
    #[error("the transaction cannot send status {status} in state {state}")]
    ResponseNotAllowed {
        /// The status code offered.
        status: u16,
        /// The state the transaction was in.
        state: &'static str,
    },
    /// A status code outside 100–699 (RFC 3261 §21).
    #[error("status code {0} is outside 100-699")]
    InvalidStatus(u16),
    /// No transaction with that id (it may have terminated).
    #[error("no such transaction")]
    UnknownTransaction,
    /// The id names a transaction of another kind than the call needs.
    #[error("the transaction is a {actual}, this needs a {needed}")]
    WrongTransactionKind {
        /// What the call needs.
        needed: &'static str,
        /// What the id names.
        actual: &'static str,
    },
    /// CANCEL can only cancel an INVITE client transaction that has not yet received a final
    /// response (RFC 3261 §9.1).
    #[error("the INVITE can no longer be cancelled")]
    NotCancellable,
    /// A transaction with this key already exists (a request reused a branch).
    #[error("a transaction with the same key already exists")]
    DuplicateTransaction,
}

/// The output queues every state machine keeps between polls.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    transmits: std::collections::VecDeque<Transmit>,
    events: std::collections::VecDeque<Event>,
}

impl Outputs {
    pub(crate) fn transmit(&mut self, destination: SocketAddr, payload: Bytes) {
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    // Once drained, a queue gives its buffer back: a transaction spends most of its life idle
    // under a timer, and an event holds a whole message, so capacity kept from the last burst
    // would be retained per transaction for up to 64·T1.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front();
        if transmit.is_none() {
            self.transmits = std::collections::VecDeque::new();
        }
        transmit
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() {
            self.events = std::collections::VecDeque::new();
        }
        event
    }
}

/// The status code of a response, checked to be in 100–699 (RFC 3261 §21).
pub(crate) fn response_status(message: &Message) -> Result<u16, TransactionError> {
    let status = message.status().ok_or(TransactionError::WrongMessageKind {
        expected: "response",
    })?;
    if (100..=699).contains(&status) {
        Ok(status)
    } else {
        Err(TransactionError::InvalidStatus(status))
    }
}
