//! sip-net: the tokio network layer of voxide. It carries SIP messages over UDP, TCP and TLS
//! (RFC 3261 §18, §26) and drives the sans-IO transaction layer of `sip-core`.
//!
//! Map of the crate:
//! - `connection`: one task per TCP/TLS connection, cutting the stream into messages with
//!   `sip_message::stream::frame` (RFC 3261 §18.3) within the size caps;
//! - [`stateless`]: error responses for bytes the parser refused (400/513 with the reason);
//! - [`Transports`] (`transport`): UDP sockets, TCP/TLS listeners and outbound connections, one
//!   task per socket or connection, a connection table so answers reuse the connection a request
//!   came on ([`Flow`], [`ConnectionId`]), idle timeouts and CRLF keep-alives (RFC 5626 §4.4.1).
//!   Every received message is parsed and validated; requests get `received`/`rport` stamped on
//!   their top Via (RFC 3261 §18.2.1, RFC 3581 §4). Bad input is answered and reported as
//!   [`TransportEvent::Rejected`], and closes a stream (RFC 4475 §3.1.2);
//! - [`tls`]: PEM identities, or a self-signed certificate generated on first start and kept;
//! - [`SipEndpoint`] (`endpoint`): owns the transports and the transaction layer, feeds it
//!   received messages and its timers, sends what it emits (responses routed by
//!   `sip_core::response_routing`, RFC 3261 §18.2.2), and hands transaction-user events to the
//!   application.
//!
//! What it does not do: parse messages itself (that is `sip-message`), decide anything
//! about transactions or routing (`sip-core`), resolve names (RFC 3263; a Via naming a host
//! by name is answered at the source address), speak WebSocket or SCTP, send keep-alive pings
//! of its own, or check TLS client certificates.

pub mod config;
mod connection;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod flow;
pub mod stateless;
pub mod tls;
mod transport;

pub use config::TransportConfig;
pub use connection::READ_CHUNK;
pub use endpoint::{EndpointConfig, EndpointError, EndpointEvent, SipEndpoint};
pub use error::{CertificateError, SendError};
pub use event::{CloseReason, ReceivedMessage, TransportEvent};
pub use flow::{ConnectionId, Destination, Flow, TransportProtocol};
pub use tls::{IdentityOrigin, TlsIdentity};
pub use transport::Transports;
