//! Sans-IO SIP core: transactions, digest authentication, response routing and the SIP rules
//! the LB and the proxy share.
//!
//! No sockets, no clock reads, no thread RNG: time and randomness are passed in.
//!
//! - [`transaction`]: the RFC 3261 §17 state machines and the layer that matches messages.
//! - [`dialog`]: RFC 3261 §12 dialogs for a UA core (a B2BUA leg): creation from either side,
//!   in-dialog requests and their checks, target refresh, forking, re-INVITE glare (§14),
//!   PRACK (RFC 3262), UPDATE (RFC 3311) and the RFC 5057 responses that end a dialog.
//! - [`auth`]: RFC 7616/8760 digest, server and client side.
//! - [`response_routing`]: `received`/`rport` stamping (§18.2.1, RFC 3581), response targets
//!   (§18.2.2) and a request's stamped source.
//! - [`transport`]: [`transport::TransportProtocol`] (UDP/TCP/TLS, re-exported by `sip-net`),
//!   its tokens and default ports, and where an IP-literal SIP URI leads.
//! - [`proxy_rules`]: the §16.6 step 8 loop-detection hash, dialog-forming and target-refresh
//!   methods.
//! - [`simulation`]: a lossy datagram network in virtual time for the simulation tests.
//! - [`internal_headers`]: the reserved `X-Voxide-*` headers: stripping them and the
//!   `X-Voxide-Source` value the LB writes for the proxy.

pub mod auth;
pub mod dialog;
pub mod internal_headers;
pub mod proxy_rules;
pub mod response_routing;
pub mod simulation;
pub mod transaction;
pub mod transport;
