//! Framing of SIP messages on stream transports (TCP, TLS; RFC 3261 §18.3): find where one
//! message ends so the transport can hand exactly that to [`crate::Message::parse`].

use crate::syntax::{is_token, parse_u32, trim};
use crate::{HeaderName, Limits, ParseError};

/// What [`frame`] found at the start of the stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed before anything can be said.
    Incomplete,
    /// The buffer starts with this many bytes of CRLF keep-alive (RFC 5626 §3.5.1): drop
    /// them (a double CRLF "ping" is answered with a single CRLF "pong").
    KeepAlive(usize),
    /// A whole message of this many bytes (header section plus Content-Length body) starts
    /// the buffer.
    Complete(usize),
}

/// Frames the next message in `buffer`.
///
/// Errors (the connection should be closed, RFC 4475 §3.1.2.2/§3.1.2.3/§3.3.9): header
/// section longer than [`Limits::max_header_section_size`] without an empty line, a message
/// over [`Limits::max_message_size`], a missing, non-numeric, negative or conflicting
/// Content-Length. Line ends must be CRLF on streams.
pub fn frame(buffer: &[u8], limits: &Limits) -> Result<Frame, ParseError> {
    let keep_alive = buffer
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if keep_alive > 0 {
        // A lone CR may be the start of a CRLF still on the way.
        return Ok(
            if keep_alive == buffer.len() && buffer.ends_with(b"\r") && keep_alive == 1 {
                Frame::Incomplete
            } else {
                Frame::KeepAlive(keep_alive)
            },
        );
    }
    let search_limit = buffer
        .len()
        .min(limits.max_header_section_size.saturating_add(4));
    let Some(header_end) = memchr::memmem::find(&buffer[..search_limit], b"\r\n\r\n") else {
        if buffer.len() > limits.max_header_section_size {
            return Err(ParseError::HeaderSectionTooLarge {
                limit: limits.max_header_section_size,
            });
        }
        return Ok(Frame::Incomplete);
    };
    let section = &buffer[..header_end + 2];
    let content_length = find_content_length(section)?.ok_or(ParseError::MissingContentLength)?;
    let total = header_end + 4 + content_length as usize;
    if total > limits.max_message_size {
        return Err(ParseError::MessageTooLarge {
            size: total,
            limit: limits.max_message_size,
        });
    }
    Ok(if buffer.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::Incomplete
    })
}

/// Scans header lines (folding joined) for Content-Length / `l`.
fn find_content_length(section: &[u8]) -> Result<Option<u32>, ParseError> {
    let mut found: Option<u32> = None;
    let mut lines = section.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        let name = trim(&line[..colon]);
        // lookup_id needs a token; it interns without allocating, unlike from_bytes.
        if !is_token(name) || HeaderName::lookup_id(name) != HeaderName::ContentLength.id() {
            continue;
        }
        let mut value: Vec<u8> = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                value.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
        }
        let length = parse_u32(trim(&value)).ok_or_else(|| {
            ParseError::header(HeaderName::ContentLength, "not a non-negative number")
        })?;
        match found {
            Some(previous) if previous != length => {
                return Err(ParseError::ConflictingContentLength);
            }
            _ => found = Some(length),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn frames_whole_message_and_waits_for_more() {
        let limits = Limits::default();
        assert_eq!(frame(REQUEST, &limits), Ok(Frame::Complete(REQUEST.len())));
        for cut in 0..REQUEST.len() {
            assert_eq!(
                frame(&REQUEST[..cut], &limits),
                Ok(Frame::Incomplete),
                "cut at {cut}"
            );
        }
        let mut two = REQUEST.to_vec();
        two.extend_from_slice(REQUEST);
        assert_eq!(frame(&two, &limits), Ok(Frame::Complete(REQUEST.len())));
    }

    #[test]
    fn keep_alives_are_reported() {
        let limits = Limits::default();
        assert_eq!(frame(b"\r\n\r\nOPTIONS", &limits), Ok(Frame::KeepAlive(4)));
        assert_eq!(frame(b"\r", &limits), Ok(Frame::Incomplete));
    }

    #[test]
    fn bad_content_length_is_an_error() {
        let limits = Limits::default();
        let missing = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            frame(missing, &limits),
            Err(ParseError::MissingContentLength)
        );
        let negative = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(
            frame(negative, &limits),
            Err(ParseError::InvalidHeader { .. })
        ));
        let conflicting = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert_eq!(
            frame(conflicting, &limits),
            Err(ParseError::ConflictingContentLength)
        );
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4000000\r\n\r\n";
        assert!(matches!(
            frame(huge, &limits),
            Err(ParseError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn endless_header_section_is_bounded() {
        let limits = Limits {
            max_header_section_size: 1024,
            ..Limits::default()
        };
        let mut endless = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        while endless.len() <= 1024 {
            endless.extend_from_slice(b"X-Filler: yes\r\n");
        }
        assert_eq!(
            frame(&endless, &limits),
            Err(ParseError::HeaderSectionTooLarge { limit: 1024 })
        );
    }
}
