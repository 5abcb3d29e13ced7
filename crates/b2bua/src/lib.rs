//! The B2BUA (C5's SEMS sbc): every call that leaves or enters the platform is re-originated
//! here, so that nothing of one leg — Via, Record-Route, Contact, Call-ID, tags, internal
//! `X-Voxide-*` headers — reaches the other side.
//!
//! Today this crate is its sans-IO call core; the socket shell (`voxide b2bua`: internal UDP,
//! a `sip_core::transaction::TransactionLayer`, the call table) will drive it.
//!
//! - [`call`]: one call, A leg (we are UAS) and B leg (we are UAC) on sip-core's dialog layer,
//!   with a handle/poll interface: [`Call::new`] takes the caller's INVITE and builds the B
//!   leg's; [`Call::handle_from_a`], [`Call::handle_from_b`] and [`Call::handle_timeout`] take
//!   input; [`Call::poll_action`] and [`Call::poll_timeout`] give output. Its docs list what
//!   the shell feeds and how the core decides ACK, CANCEL, status mapping and PRACK.
//!   - `call/config.rs`: [`LegConfig`] and the header allow-list [`HeaderPolicy`] with the
//!     headers that never cross ([`NEVER_COPIED`]).
//!   - `call/filter.rs`: header copying, option tags and Allow, [`mapped_status`], bodies.
//!   - `call/initial.rs`: the B leg INVITE built anew, forks and early media, the answer and
//!     the caller's CANCEL.
//!   - `call/relay.rs`: in-dialog requests across, ACK relay, BYE and the teardown.
//!
//! No sockets, no clock reads, no thread RNG: time (`Instant`) and randomness (a seed per
//! call) are passed in.

pub mod call;

pub use call::{
    Action, Call, EndReason, HeaderPolicy, IDENTITY_HEADERS, Leg, LegConfig, NEVER_COPIED,
    Outbound, Rejection, mapped_status,
};
