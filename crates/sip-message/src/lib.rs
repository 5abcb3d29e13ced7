//! # sip-message
//!
//! Zero-copy parsing and printing of SIP messages (RFC 3261 §7, §20, §25) for voxide.
//!
//! A [`Message`] is one [`bytes::Bytes`] buffer plus an index: the start line, one entry per
//! header line (interned [`HeaderName`], spans of name and value) and the body span. Typed
//! views ([`Via`], [`NameAddr`], [`CSeq`], [`Uri`], [`Credentials`], …) parse a value on demand
//! and borrow from the buffer; parameters and branches are compared raw, never
//! percent-decoded. Edits (push/pop Via, add/remove headers, new Request-URI or body) are
//! kept in the index and applied when the message is printed; every untouched line prints
//! byte for byte as received.
//!
//! [`Message::parse`] checks framing: start line, header lines, Content-Length and the
//! limits in [`Limits`]. [`Message::validate`] adds the checks RFC 3261 and RFC 4475 ask of a
//! well-formed message (mandatory and single-instance headers, syntax of the headers an
//! element acts on, CSeq method). [`stream::frame`] cuts messages out of a TCP/TLS byte
//! stream.
//!
//! ```
//! use bytes::Bytes;
//! use sip_message::{HeaderName, Message, Method};
//!
//! let datagram = Bytes::from_static(
//!     b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK776\r\n\
//!       f: <sip:alice@example.com>;tag=88\r\n\
//!       t: <sip:bob@example.com>\r\n\
//!       i: a84b4c76e66710\r\n\
//!       CSeq: 63104 OPTIONS\r\n\
//!       Content-Length: 0\r\n\r\n",
//! );
//! let mut message = Message::parse(datagram)?;
//! message.validate()?;
//! assert_eq!(message.method(), Some(&Method::Options));
//! assert_eq!(message.top_via()?.branch(), Some(&b"z9hG4bK776"[..]));
//! assert_eq!(message.from()?.tag(), Some(&b"88"[..]));
//!
//! // A proxy adds its own Via; untouched lines print as received.
//! message.push_via("SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKproxy");
//! message.replace_header(HeaderName::MaxForwards, "69");
//! let forwarded = Message::parse(message.to_bytes())?;
//! assert_eq!(forwarded.vias().count(), 2);
//! assert_eq!(forwarded.header(&HeaderName::CallId), Some(&b"a84b4c76e66710"[..]));
//! # Ok::<(), sip_message::ParseError>(())
//! ```
//!
//! What this crate deliberately does not do: no I/O, no clock, no transaction or dialog
//! state (that is `sip-core`), no DNS, no SDP or multipart body parsing (bodies are opaque
//! bytes), no UTF-8 validation of display names or reason phrases, no semantic checks that
//! depend on an element's role (416 for unknown schemes, 420 for Require, 483 for
//! Max-Forwards 0 are the caller's decisions).

mod builder;
mod error;
mod header_name;
mod headers;
mod limits;
mod message;
mod method;
mod params;
pub mod stream;
pub mod syntax;
mod uri;

pub use builder::MessageBuilder;
pub use error::ParseError;
pub use header_name::HeaderName;
pub use headers::{
    CSeq, Challenge, Contact, Credentials, MediaType, NameAddr, SessionExpires, Via,
};
pub use limits::Limits;
pub use message::Message;
pub use method::Method;
pub use params::{ParamIter, Params};
pub use stream::Frame;
pub use uri::{Host, Scheme, Unescaped, Uri};
