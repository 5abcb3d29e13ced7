//! SIP dialogs (RFC 3261 §12) as the UA core of a B2BUA leg sees them, with the invite usage's
//! session rules: re-INVITE glare (§14), 2xx retransmission until the ACK (§13.3.1.4), reliable
//! provisional responses and PRACK (RFC 3262), UPDATE (RFC 3311) and which error responses end
//! a dialog (RFC 5057).
//!
//! A [`Dialog`] is created from either side of a dialog-forming request:
//! [`Dialog::from_uac_response`] when a 1xx with a To tag or a 2xx comes back for a request we
//! sent, [`Dialog::from_uas_request`] when we answer a request we received. It then
//!
//! - builds the requests we send inside it ([`Dialog::request`], [`Dialog::prack`],
//!   [`Dialog::ack_for_2xx`]): Request-URI and Route from the remote target and route set (loose
//!   and strict routing, §12.2.1.1), From/To with both tags, Call-ID, the next CSeq;
//! - checks the requests we receive ([`Dialog::receive_request`]): an older CSeq gets 500
//!   (§12.2.2), a re-INVITE or UPDATE offer that collides with one of ours gets 491, one that
//!   overlaps a pending one of theirs gets 500 with Retry-After (§14.2, RFC 3311 §5.2);
//! - builds our responses and records what they do ([`Dialog::respond`],
//!   [`Dialog::respond_reliably`]): early to confirmed, target refresh, retransmission of 2xx;
//! - learns from the responses to our requests ([`Dialog::receive_response`]): confirmation,
//!   target refresh, 491 glare and the RFC 5057 errors that end the dialog.
//!
//! Like the transaction layer, a dialog is sans-IO and driven with the current time: its timers
//! (2xx and reliable 1xx retransmission, the §14.1 glare back-off) show in
//! [`Dialog::poll_timeout`], fire in [`Dialog::handle_timeout`] and report through
//! [`Dialog::poll_event`]. Nothing reads a clock or draws random numbers: the glare delay and
//! Retry-After values come from a `random: u32` the caller draws.
//!
//! Requests come without a Via: the caller adds its own (with [`crate::transaction::new_branch`])
//! before handing them to the transaction layer, or, for the ACK of a 2xx, straight to the
//! transport (§13.2.2.4).
//!
//! A [`DialogSet`] holds the dialogs of one endpoint by [`DialogId`], finds the dialog of an
//! incoming request (481 when none, §12.2.2) and sorts the responses to a forked INVITE into
//! early dialogs, one confirmed by the first 2xx, the others terminated (§13.2.2.4).

mod create;
mod failure;
mod incoming;
mod outgoing;
mod route;
mod session;
mod set;

use bytes::Bytes;
use sip_message::{HeaderName, Message, MessageBuilder, Method, NameAddr};

pub use create::Dialog;
pub use failure::{FailureEffect, failure_effect};
pub use incoming::InDialog;
pub use outgoing::ResponseOutcome;
pub use session::{InviteSession, OfferState, glare_retry_delay};
pub use set::{DialogSet, Routed};

/// The identity of a dialog at one UA (RFC 3261 §12): Call-ID, local tag, remote tag. The peer
/// knows the same dialog with the tags swapped ([`DialogId::reversed`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID, as sent.
    pub call_id: Bytes,
    /// Our tag: the From tag of our requests, the To tag of the requests we receive.
    pub local_tag: Bytes,
    /// The peer's tag.
    pub remote_tag: Bytes,
}

impl DialogId {
    /// The dialog a received request belongs to: local tag from To, remote tag from From
    /// (§12.2.2). `None` when the request carries no To tag (it is outside any dialog) or lacks a
    /// Call-ID or From tag.
    pub fn of_received_request(request: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: Bytes::copy_from_slice(request.call_id().ok()?),
            local_tag: Bytes::copy_from_slice(request.to().ok()?.tag()?),
            remote_tag: Bytes::copy_from_slice(request.from().ok()?.tag()?),
        })
    }

    /// The dialog a received response belongs to: local tag from From, remote tag from To
    /// (§12.1.2). `None` without a To tag, From tag or Call-ID.
    pub fn of_received_response(response: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: Bytes::copy_from_slice(response.call_id().ok()?),
            local_tag: Bytes::copy_from_slice(response.from().ok()?.tag()?),
            remote_tag: Bytes::copy_from_slice(response.to().ok()?.tag()?),
        })
    }

    /// The same dialog as the peer names it.
    #[must_use]
    pub fn reversed(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.remote_tag.clone(),
            remote_tag: self.local_tag.clone(),
        }
    }
}

/// Whether `request` claims to be inside a dialog: it carries a To tag (RFC 3261 §12.2.2).
/// Requests without one are new (an initial INVITE) and never reach [`DialogSet::receive_request`].
pub fn is_in_dialog(request: &Message) -> bool {
    request.to().ok().and_then(|to| to.tag()).is_some()
}

/// The states of a dialog (RFC 3261 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    /// Created by a provisional response with a To tag (or, at the UAS, by the request it has
    /// not answered finally yet).
    Early,
    /// A 2xx was sent or received.
    Confirmed,
    /// Ended: BYE, a non-2xx final answer to the creating request, or an error response that
    /// ends the dialog (RFC 5057). Nothing more is sent in it.
    Terminated,
}

/// Which side created the dialog (and so who owns the Call-ID, RFC 3261 §14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the dialog-forming request and generated its Call-ID.
    Uac,
    /// We received the dialog-forming request.
    Uas,
}

/// Why a dialog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// We built a BYE (RFC 3261 §15.1.1: the dialog ends as the BYE goes out).
    ByeSent,
    /// The peer sent a BYE (§15.1.2).
    ByeReceived,
    /// The dialog-forming request got this non-2xx final response (§12.3), sent or received.
    Rejected(u16),
    /// A request in the dialog got a response that ends it (RFC 5057 §5.1: 481, 408 or a
    /// transaction timeout, 404, 410, 416, 482–485, 502, 604).
    ErrorResponse(u16),
    /// Another fork of our INVITE answered with a 2xx first (§13.2.2.4).
    ForkNotChosen,
}

/// What the caller of a [`Dialog`] must act on; drained with [`Dialog::poll_event`].
#[derive(Debug, Clone)]
pub enum DialogEvent {
    /// Send this response again through the request's server transaction: a 2xx to an INVITE
    /// without ACK yet (§13.3.1.4) or a reliable provisional response without PRACK yet
    /// (RFC 3262 §3).
    Retransmit(Box<Message>),
    /// No ACK came for our 2xx within 64·T1: the dialog is confirmed but the session should end
    /// with a BYE (§13.3.1.4).
    AckTimeout {
        /// CSeq number of the INVITE.
        cseq: u32,
    },
    /// No PRACK came for our reliable provisional response within 64·T1: reject the INVITE
    /// with a 5xx (RFC 3262 §3).
    PrackTimeout {
        /// CSeq number of the INVITE.
        cseq: u32,
    },
    /// The §14.1 glare back-off ran out: send the re-INVITE (or UPDATE) again.
    RetryDue(Method),
    /// The dialog ended.
    Terminated(TerminationReason),
}

/// A message body: Content-Type and content. `application/sdp` bodies are offers and answers
/// (RFC 3264) and drive the offer state of the invite session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The Content-Type value, e.g. `application/sdp`.
    pub content_type: Bytes,
    /// The bytes.
    pub content: Bytes,
}

impl Body {
    /// A body of any type.
    pub fn new(content_type: impl Into<Bytes>, content: impl Into<Bytes>) -> Body {
        Body {
            content_type: content_type.into(),
            content: content.into(),
        }
    }

    /// An SDP body.
    pub fn sdp(content: impl Into<Bytes>) -> Body {
        Body::new("application/sdp", content)
    }

    fn is_sdp(&self) -> bool {
        !self.content.is_empty()
            && sip_message::MediaType::parse(&self.content_type)
                .is_ok_and(|media| media.is(b"application", b"sdp"))
    }
}

/// Whether a received message carries an SDP body (an offer or an answer).
fn carries_sdp(message: &Message) -> bool {
    !message.body().is_empty()
        && message
            .content_type()
            .ok()
            .flatten()
            .is_some_and(|media| media.is(b"application", b"sdp"))
}

/// Why a dialog could not be created or could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("the message lacks {0}")]
    Missing(&'static str),
    /// The message is a response where a request was expected, or the reverse.
    #[error("expected a {0}")]
    WrongMessageKind(&'static str),
    /// Only dialog-forming requests (INVITE, SUBSCRIBE, REFER, NOTIFY) create dialogs.
    #[error("{0} does not create dialogs")]
    NotDialogForming(Method),
    /// The request already carries a To tag: it is inside a dialog, not creating one.
    #[error("the request is already inside a dialog")]
    AlreadyInDialog,
    /// Only 101–299 responses create dialogs (RFC 3261 §12.1).
    #[error("status {0} creates no dialog")]
    NotDialogCreating(u16),
    /// The message names another dialog.
    #[error("the message belongs to another dialog")]
    OtherDialog,
    /// No dialog with the message's identity.
    #[error("no such dialog")]
    UnknownDialog,
    /// The dialog has ended; nothing more is sent in it.
    #[error("the dialog is terminated")]
    Terminated,
    /// An INVITE is in progress in either direction (RFC 3261 §14.1), or our 2xx still waits
    /// for its ACK.
    #[error("an INVITE transaction is in progress in this dialog")]
    InviteInProgress,
    /// An offer is outstanding (ours or the peer's), so no new offer may go out (RFC 3264 §4,
    /// RFC 3311 §5.1).
    #[error("an offer is outstanding")]
    OfferPending,
    /// The method cannot be sent now, e.g. BYE from the callee before the ACK (RFC 3261 §15).
    #[error("{method} cannot be sent now: {why}")]
    NotAllowed {
        /// The method refused.
        method: Method,
        /// The rule.
        why: &'static str,
    },
    /// ACK, PRACK and CANCEL have their own builders ([`Dialog::ack_for_2xx`],
    /// [`Dialog::prack`], [`crate::transaction::make_cancel`]).
    #[error("{0} is built by its own function")]
    DedicatedBuilder(Method),
    /// The local CSeq reached 2^32 − 1 (RFC 3261 §8.1.1.5: it must fit 32 bits).
    #[error("the local CSeq space is exhausted")]
    SequenceExhausted,
    /// A reliable provisional response is still unacknowledged (RFC 3262 §3).
    #[error("a reliable provisional response is still unacknowledged")]
    ReliableProvisionalPending,
    /// The response is not the reliable provisional response the dialog expects a PRACK for.
    #[error("the response is not an unacknowledged reliable provisional response")]
    NotReliableProvisional,
    /// The operation needs an INVITE request or response it was not given.
    #[error("the message is not an INVITE transaction's")]
    NotInvite,
    /// [`Dialog::schedule_glare_retry`] without a 491 to retry after.
    #[error("no request got 491 Request Pending")]
    NoGlare,
}

/// The answer [`Dialog::receive_request`] or [`DialogSet::receive_request`] chose for a request
/// it refuses: 481 (no such dialog), 500 (CSeq out of order, or an overlapping INVITE/offer of the
/// peer, with Retry-After), 491 (glare). An ACK is never answered (RFC 3261 §17): a refused ACK
/// is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'static str,
    /// Whether the response carries a Retry-After of 0–10 s (RFC 3261 §14.2, RFC 3311 §5.2).
    pub retry_after: bool,
}

impl Rejection {
    pub(crate) const NO_DIALOG: Rejection = Rejection {
        status: 481,
        reason: "Call/Transaction Does Not Exist",
        retry_after: false,
    };
    pub(crate) const OUT_OF_ORDER: Rejection = Rejection {
        status: 500,
        reason: "Server Internal Error",
        retry_after: false,
    };
    pub(crate) const OVERLAP: Rejection = Rejection {
        status: 500,
        reason: "Server Internal Error",
        retry_after: true,
    };
    pub(crate) const GLARE: Rejection = Rejection {
        status: 491,
        reason: "Request Pending",
        retry_after: false,
    };

    /// The response to send: Via, From, To, Call-ID and CSeq of `request`, and, when asked for,
    /// `Retry-After: random % 11` seconds.
    pub fn response(&self, request: &Message, random: u32) -> Message {
        let mut builder = MessageBuilder::response_to(request, self.status, self.reason);
        if self.retry_after {
            builder = builder.header(HeaderName::RetryAfter, (random % 11).to_string());
        }
        builder.build()
    }
}

/// A From/To identity kept by the dialog: display name as received and URI.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Party {
    display_name: Option<Bytes>,
    uri: Bytes,
}

impl Party {
    fn of(address: &NameAddr<'_>) -> Party {
        Party {
            display_name: address.display_name.map(Bytes::copy_from_slice),
            uri: Bytes::copy_from_slice(address.uri.raw),
        }
    }

    /// The From or To value: `"Name" <uri>;tag=tag` (no tag when empty).
    fn header_value(&self, tag: &[u8]) -> Bytes {
        let mut value = Vec::with_capacity(self.uri.len() + tag.len() + 32);
        if let Some(name) = &self.display_name {
            value.extend_from_slice(name);
            value.push(b' ');
        }
        value.push(b'<');
        value.extend_from_slice(&self.uri);
        value.push(b'>');
        if !tag.is_empty() {
            value.extend_from_slice(b";tag=");
            value.extend_from_slice(tag);
        }
        Bytes::from(value)
    }
}

/// The URI of the first Contact of `message`, if it has one.
fn contact_uri(message: &Message) -> Option<Bytes> {
    let contact = message.contacts().next()?.ok()?;
    Some(Bytes::copy_from_slice(contact.address()?.uri.raw))
}

/// CSeq number and method of `message`.
fn cseq_of(message: &Message) -> Result<(u32, Method), DialogError> {
    let cseq = message.cseq().map_err(|_| DialogError::Missing("a CSeq"))?;
    Ok((cseq.number, cseq.method))
}

#[cfg(test)]
mod test_support;
