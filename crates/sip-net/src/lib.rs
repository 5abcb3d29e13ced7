//! sip-net: the tokio network layer of voxide. It carries SIP messages over UDP, TCP and TLS
//! (RFC 3261 §18, §26) and drives the sans-IO transaction layer of `sip-core`.
//!
//! Map of the crate:
//! - [`framing`]: cutting streams into messages by `Content-Length` (RFC 3261 §18.3) with a size
//!   cap, checking datagrams, stateless error responses for bytes the parser cannot use;
//! - [`Transports`] (`transport`): UDP sockets, TCP/TLS listeners and outbound connections, one
//!   task per socket or connection, a connection table so answers reuse the connection a request
//!   came on ([`Flow`], [`ConnectionId`]), idle timeouts and CRLF keep-alives (RFC 5626 §4.4.1);
//! - [`tls`]: PEM identities, or a self-signed certificate generated on first start and kept;
//! - [`SipEndpoint`] (`endpoint`): owns the transports and the transaction layer, feeds it
//!   received messages and its timers, sends what it emits, and hands transaction-user events to
//!   the application.
//!
//! What it does not do: parse messages beyond framing (that is `sip-message`), decide anything
//! about transactions or routing (`sip-core`), resolve names (RFC 3263), speak WebSocket, or
//! check client certificates.

pub mod config;
mod connection;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod flow;
pub mod framing;
pub mod tls;
mod transport;

pub use config::TransportConfig;
pub use connection::READ_CHUNK;
pub use endpoint::SipEndpoint;
pub use error::{CertificateError, SendError};
pub use event::{CloseReason, ReceivedMessage, TransportEvent};
pub use flow::{ConnectionId, Destination, Flow, TransportProtocol};
pub use framing::FramingError;
pub use tls::{IdentityOrigin, TlsIdentity};
pub use transport::Transports;
