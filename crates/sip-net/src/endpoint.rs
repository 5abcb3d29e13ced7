//! endpoint placeholder
pub struct SipEndpoint;
