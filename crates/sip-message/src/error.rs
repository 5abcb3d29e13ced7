//! Typed parse errors, each mapped to the SIP response a server sends back (RFC 3261 §21).

use crate::HeaderName;

/// Why a message or a header value was rejected.
///
/// Every variant maps to a status code and a reason phrase through
/// [`ParseError::status_code`] and [`ParseError::reason_phrase`], so an element can answer
/// bad input with a precise response instead of dropping it silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The datagram (or framed stream message) is larger than [`crate::Limits::max_message_size`].
    #[error("message is {size} bytes, over the limit of {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    /// The header section holds more header lines than [`crate::Limits::max_headers`].
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    /// A header name is longer than [`crate::Limits::max_header_name_len`].
    #[error("header name of {length} bytes is over the limit of {limit}")]
    HeaderNameTooLong { length: usize, limit: usize },
    /// Over a stream, the header section grew past the limit without an empty line.
    #[error("header section over {limit} bytes without an empty line")]
    HeaderSectionTooLarge { limit: usize },
    /// The input holds no message at all (empty, or only CRLFs).
    #[error("empty message")]
    Empty,
    /// The header section is cut off: the input ends inside the start line or a header
    /// line. (A datagram that ends right after a complete header line is accepted.)
    #[error("header section is not terminated by an empty line")]
    Unterminated,
    /// The request line or status line does not follow RFC 3261 §7.1 / §7.2.
    #[error("malformed start line: {reason}")]
    MalformedStartLine { reason: &'static str },
    /// The SIP-Version is not `SIP/2.0` (answered with 505, RFC 3261 §8.2.2... §21.5.7).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// The Status-Code is not three digits in 100..=699 (RFC 3261 §7.2).
    #[error("invalid status code")]
    InvalidStatusCode,
    /// The Request-URI is not acceptable (RFC 3261 §8.2.1, RFC 4475 §3.1.2.7, §3.1.2.8, §3.1.2.11).
    #[error("malformed Request-URI: {reason}")]
    InvalidRequestUri { reason: &'static str },
    /// The Request-URI scheme is not one this element serves (RFC 3261 §8.2.2.1: 416).
    #[error("unsupported URI scheme")]
    UnsupportedUriScheme,
    /// A header line has no colon or a bad name (RFC 3261 §7.3).
    #[error("malformed header line {line}")]
    MalformedHeaderLine { line: usize },
    /// A header value does not follow its grammar.
    #[error("malformed {header} header: {reason}")]
    InvalidHeader {
        header: HeaderName,
        reason: &'static str,
    },
    /// A header a request or response must carry is absent (RFC 3261 §8.1.1).
    #[error("missing {header} header")]
    MissingHeader { header: HeaderName },
    /// A header that may appear only once appears more than once (RFC 4475 §3.3.8).
    #[error("more than one {header} header")]
    DuplicateHeader { header: HeaderName },
    /// The Content-Length values disagree (RFC 4475 §3.3.9).
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// Content-Length claims more body than the datagram holds (RFC 3261 §18.3, RFC 4475 §3.1.2.2).
    #[error("Content-Length {declared} is larger than the {available} body bytes received")]
    BodyTruncated { declared: usize, available: usize },
    /// A stream message has no Content-Length (RFC 3261 §18.3 makes it mandatory on streams).
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// The request-line method and the CSeq method differ (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17).
    #[error("CSeq method does not match the request method")]
    MethodMismatch,
    /// A URI does not follow RFC 3261 §25.1 / RFC 3966.
    #[error("malformed URI: {reason}")]
    InvalidUri { reason: &'static str },
}

impl ParseError {
    /// The SIP status code a server answers this error with (RFC 3261 §21).
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::MessageTooLarge { .. } | ParseError::HeaderSectionTooLarge { .. } => 513,
            ParseError::UnsupportedVersion => 505,
            ParseError::UnsupportedUriScheme => 416,
            _ => 400,
        }
    }

    /// The reason phrase to send with [`ParseError::status_code`], naming the bad part,
    /// e.g. `Bad Request - malformed Via header`.
    pub fn reason_phrase(&self) -> String {
        match self {
            ParseError::MessageTooLarge { .. } | ParseError::HeaderSectionTooLarge { .. } => {
                "Message Too Large".to_owned()
            }
            ParseError::UnsupportedVersion => "Version Not Supported".to_owned(),
            ParseError::UnsupportedUriScheme => "Unsupported URI Scheme".to_owned(),
            ParseError::InvalidHeader { header, .. } => {
                format!("Bad Request - malformed {header} header")
            }
            ParseError::MissingHeader { header } => {
                format!("Bad Request - missing {header} header")
            }
            ParseError::DuplicateHeader { header } => {
                format!("Bad Request - more than one {header} header")
            }
            ParseError::TooManyHeaders { .. } => "Bad Request - too many headers".to_owned(),
            ParseError::HeaderNameTooLong { .. } => "Bad Request - header name too long".to_owned(),
            ParseError::Empty => "Bad Request - empty message".to_owned(),
            ParseError::Unterminated => "Bad Request - unterminated header section".to_owned(),
            ParseError::MalformedStartLine { .. } | ParseError::InvalidStatusCode => {
                "Bad Request - malformed start line".to_owned()
            }
            ParseError::InvalidRequestUri { .. } => {
                "Bad Request - malformed Request-URI".to_owned()
            }
            ParseError::MalformedHeaderLine { .. } => {
                "Bad Request - malformed header line".to_owned()
            }
            ParseError::ConflictingContentLength => {
                "Bad Request - conflicting Content-Length".to_owned()
            }
            ParseError::BodyTruncated { .. } => {
                "Bad Request - body shorter than Content-Length".to_owned()
            }
            ParseError::MissingContentLength => "Bad Request - missing Content-Length".to_owned(),
            ParseError::MethodMismatch => "Bad Request - CSeq method mismatch".to_owned(),
            ParseError::InvalidUri { .. } => "Bad Request - malformed URI".to_owned(),
        }
    }

    pub(crate) fn header(header: HeaderName, reason: &'static str) -> ParseError {
        ParseError::InvalidHeader { header, reason }
    }
}
