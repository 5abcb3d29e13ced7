//! response_routing
