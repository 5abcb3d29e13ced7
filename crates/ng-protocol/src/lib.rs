//! rtpengine's "ng" control protocol, sans I/O: bencode, the `<cookie> <dict>` framing, typed
//! commands and replies, and the SDP rewriter the relay applies to offers and answers.
//!
//! Both sides: a relay parses requests ([`parse_request`]) and encodes replies
//! ([`Reply::to_value`]); a client encodes commands ([`NgCommand::to_value`],
//! [`frame_request`]) and decodes replies ([`Reply::decode`]). Each direction is the inverse of
//! the other, which the round-trip tests hold them to.
//!
//! The wire details follow `shared/design/ng-protocol.md` (rtpengine mr26 as Kamailio's
//! `rtpengine` module drives it); bencode is BEP 3, SDP is RFC 8866.

pub mod bencode;
pub mod command;
pub mod message;
pub mod reply;
pub mod sdp;

pub use bencode::{DecodeError, Value};
pub use command::{
    AddressFamily, DEFAULT_LIST_LIMIT, Delete, IceMode, NgCommand, NgError, OfferAnswer, Query,
    Replace, parse_command, parse_request,
};
pub use message::{FramingError, NgMessage, frame_reply, frame_request, split_message};
pub use reply::{
    CallReport, Counters, MediaReport, Reply, ReplyBody, ReplyError, Statistics, StreamReport,
    TagReport,
};
pub use sdp::{Direction, MediaDescription, RewriteOptions, SdpError, SessionDescription};
