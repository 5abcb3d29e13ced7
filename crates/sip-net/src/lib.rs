//! sip-net
