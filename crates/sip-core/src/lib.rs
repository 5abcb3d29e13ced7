//! Sans-IO SIP core: transactions, digest authentication and response routing.
//!
//! No sockets, no clock reads, no thread RNG: time and randomness are passed in.

pub mod auth;
pub mod response_routing;
pub mod transaction;
