//! sip-message
