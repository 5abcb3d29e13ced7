//! proxy: registrar and router.

pub mod accounting;
pub mod authentication;
pub mod location;
pub mod registrar;
pub mod routing;
