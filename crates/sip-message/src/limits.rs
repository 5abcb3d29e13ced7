//! Bounds that keep parsing of hostile input finite in memory and time.

/// Resource bounds applied while parsing. Every bound is checked before the work it guards,
/// so a hostile datagram costs at most one pass over its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes (default 65535, the largest UDP payload; 513 above it).
    pub max_message_size: usize,
    /// Most header fields (lines) in one message (default 256; a full INVITE through a few
    /// proxies carries 20–40, so 256 leaves room while bounding the header index).
    pub max_headers: usize,
    /// Longest header name, in bytes (default 128; the longest registered SIP header name
    /// is under 40 bytes).
    pub max_header_name_len: usize,
    /// Largest header section (start line to the empty line) a stream framer waits for
    /// before giving up (default 65535).
    pub max_header_section_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65535,
            max_headers: 256,
            max_header_name_len: 128,
            max_header_section_size: 65535,
        }
    }
}
