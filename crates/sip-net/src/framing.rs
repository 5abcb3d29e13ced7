//! Finding message boundaries in a byte stream (RFC 3261 §18.3) and checking datagrams.
//!
//! This is the transport's own, deliberately small view of a message: the start line, the end of
//! the header section and `Content-Length`. Full parsing belongs to `sip-message`; the transport
//! only needs enough to cut a stream into messages with bounded memory and to answer garbage with
//! a stateless error response even when the full parser would refuse the message.

use bytes::{BufMut, Bytes, BytesMut};

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete message of this many bytes (header section plus `Content-Length` body).
    Message { length: usize },
    /// A double-CRLF keep-alive ping (RFC 5626 §4.4.1): consume `length` bytes, answer with CRLF.
    KeepAlivePing { length: usize },
    /// A single CRLF: a keep-alive pong, or stray CRLF before a message (RFC 3261 §7.5 lets a
    /// receiver ignore CRLFs ahead of a start line). Consume `length` bytes.
    StrayLineEnd { length: usize },
}

/// Outcome of looking at the front of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// A full frame is buffered.
    Complete(Frame),
    /// More bytes are needed; the buffer is still within the limits.
    Incomplete,
}

/// Why bytes from a peer cannot be cut into a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// No blank line ended the header section within `limit` bytes (RFC 3261 §7).
    #[error("header section exceeds {limit} bytes without an empty line ({buffered} bytes buffered)")]
    HeaderSectionTooLarge { limit: usize, buffered: usize },
    /// Header section plus announced body exceed the message size limit.
    #[error("message of {length} bytes exceeds the {limit} byte limit")]
    MessageTooLarge { limit: usize, length: usize },
    /// RFC 3261 §18.3: stream transports MUST carry `Content-Length`.
    #[error("stream message without Content-Length")]
    MissingContentLength,
    /// `Content-Length` is not a plain non-negative decimal number, or appears twice with
    /// different values.
    #[error("Content-Length is not a valid length")]
    InvalidContentLength,
    /// RFC 3261 §18.3: a datagram ended before the body announced by `Content-Length`.
    #[error("datagram body has {available} bytes but Content-Length announces {content_length}")]
    BodyShorterThanContentLength { content_length: usize, available: usize },
}

impl FramingError {
    /// Status code of the response a server sends for this fault.
    pub fn status_code(&self) -> u16 {
        match self {
            // RFC 3261 §21.5.14: 513 Message Too Large.
            FramingError::HeaderSectionTooLarge { .. } | FramingError::MessageTooLarge { .. } => {
                513
            }
            _ => 400,
        }
    }

    /// Reason phrase naming the fault, so the peer learns what was wrong.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            FramingError::HeaderSectionTooLarge { .. } => "Header Section Too Large",
            FramingError::MessageTooLarge { .. } => "Message Too Large",
            FramingError::MissingContentLength => "Missing Content-Length",
            FramingError::InvalidContentLength => "Invalid Content-Length",
            FramingError::BodyShorterThanContentLength { .. } => {
                "Content-Length Larger Than Body"
            }
        }
    }
}

/// Looks at the front of a stream buffer and says whether a whole message (or keep-alive) is
/// there, RFC 3261 §18.3.
///
/// Memory stays bounded: once `max_message_size` bytes are buffered without the end of the header
/// section, or once the announced length exceeds the limit, this returns an error instead of
/// asking for more.
pub fn frame_stream(buffer: &[u8], max_message_size: usize) -> Result<FrameStatus, FramingError> {
    if buffer.starts_with(b"\r\n\r\n") {
        return Ok(FrameStatus::Complete(Frame::KeepAlivePing { length: 4 }));
    }
    if buffer.starts_with(b"\r\n") {
        // Wait to tell a ping ("\r\n\r\n") from a pong ("\r\n") when only the first two bytes
        // have arrived.
        if buffer.len() < 4 && b"\r\n\r\n".starts_with(buffer) {
            return Ok(FrameStatus::Incomplete);
        }
        return Ok(FrameStatus::Complete(Frame::StrayLineEnd { length: 2 }));
    }
    let Some(header_length) = header_section_length(buffer) else {
        if buffer.len() >= max_message_size {
            return Err(FramingError::HeaderSectionTooLarge {
                limit: max_message_size,
                buffered: buffer.len(),
            });
        }
        return Ok(FrameStatus::Incomplete);
    };
    let content_length =
        content_length(&buffer[..header_length])?.ok_or(FramingError::MissingContentLength)?;
    let length = header_length
        .checked_add(content_length)
        .filter(|length| *length <= max_message_size)
        .ok_or(FramingError::MessageTooLarge {
            limit: max_message_size,
            length: header_length.saturating_add(content_length),
        })?;
    if buffer.len() < length {
        return Ok(FrameStatus::Incomplete);
    }
    Ok(FrameStatus::Complete(Frame::Message { length }))
}

/// Checks a datagram and returns it cut to the end of its body, RFC 3261 §18.3: bytes beyond
/// `Content-Length` are discarded, a body shorter than `Content-Length` is an error. A datagram
/// without `Content-Length` carries its body up to the end of the packet.
///
/// Returns `Ok(None)` for keep-alive datagrams made only of CRLFs.
pub fn check_datagram(datagram: Bytes, max_message_size: usize) -> Result<Option<Bytes>, FramingError> {
    if datagram.iter().all(|byte| matches!(byte, b'\r' | b'\n')) {
        return Ok(None);
    }
    if datagram.len() > max_message_size {
        return Err(FramingError::MessageTooLarge {
            limit: max_message_size,
            length: datagram.len(),
        });
    }
    let Some(header_length) = header_section_length(&datagram) else {
        // A datagram whose header section has no end: the parser will reject it with its own
        // error; nothing here can be cut.
        return Ok(Some(datagram));
    };
    match content_length(&datagram[..header_length])? {
        None => Ok(Some(datagram)),
        Some(content_length) => {
            let available = datagram.len() - header_length;
            if available < content_length {
                return Err(FramingError::BodyShorterThanContentLength {
                    content_length,
                    available,
                });
            }
            Ok(Some(datagram.slice(..header_length + content_length)))
        }
    }
}

/// Length of the header section including its terminating empty line, if it is complete.
fn header_section_length(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|position| position + 4)
}

/// Header lines after the start line, with folded continuation lines joined to their header.
/// Yields `(name, value)` with the value still holding folding whitespace.
fn header_fields(header_section: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut lines = header_section.split(|byte| *byte == b'\n').skip(1).peekable();
    std::iter::from_fn(move || {
        loop {
            let line = trim_carriage_return(lines.next()?);
            if line.is_empty() || line[0] == b' ' || line[0] == b'\t' {
                continue;
            }
            let colon = line.iter().position(|byte| *byte == b':')?;
            let name = trim_whitespace(&line[..colon]);
            // Continuation lines (RFC 3261 §7.3.1) only matter for the value's end, and the
            // values this module reads never fold in practice; skip them.
            while lines
                .peek()
                .is_some_and(|next| next.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
            {
                lines.next();
            }
            return Some((name, &line[colon + 1..]));
        }
    })
}

/// `Content-Length` (compact form `l`, RFC 3261 §7.3.3) of a header section, if present.
fn content_length(header_section: &[u8]) -> Result<Option<usize>, FramingError> {
    let mut found = None;
    for (name, value) in header_fields(header_section) {
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let digits = trim_whitespace(value);
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::InvalidContentLength);
        }
        // At most 19 digits, so the sum fits in u64; a length beyond usize saturates and is
        // then refused by the size limit.
        let length = digits
            .iter()
            .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if found.is_some_and(|earlier| earlier != length) {
            return Err(FramingError::InvalidContentLength);
        }
        found = Some(length);
    }
    Ok(found)
}

/// Builds a stateless error response to a request, copying the headers RFC 3261 §8.2.6.2 says a
/// response must echo (Via, From, To, Call-ID, CSeq), byte for byte.
///
/// Works on raw bytes because it answers messages the full parser refused. Returns `None` for
/// responses (never answered, RFC 3261 §18.1.2) or when any of those headers is missing, in which
/// case nothing can be routed back and the message is dropped.
pub fn stateless_error_response(message: &[u8], status_code: u16, reason_phrase: &str) -> Option<Bytes> {
    let header_section = match header_section_length(message) {
        Some(length) => &message[..length],
        None => message,
    };
    let start_line_end = header_section.iter().position(|byte| *byte == b'\n')?;
    let start_line = trim_carriage_return(&header_section[..start_line_end]);
    if start_line.starts_with(b"SIP/") || !start_line.ends_with(b"SIP/2.0") {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for (name, value) in header_fields(header_section) {
        let value = trim_whitespace(value);
        let is = |full: &[u8], compact: &[u8]| {
            name.eq_ignore_ascii_case(full) || name.eq_ignore_ascii_case(compact)
        };
        if is(b"via", b"v") {
            vias.push(value);
        } else if is(b"from", b"f") {
            from.get_or_insert(value);
        } else if is(b"to", b"t") {
            to.get_or_insert(value);
        } else if is(b"call-id", b"i") {
            call_id.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"cseq") {
            cseq.get_or_insert(value);
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if vias.is_empty() {
        return None;
    }
    let mut response = BytesMut::with_capacity(256 + header_section.len());
    response.put_slice(format!("SIP/2.0 {status_code} {reason_phrase}\r\n").as_bytes());
    for via in vias {
        put_header(&mut response, b"Via", via);
    }
    put_header(&mut response, b"From", from);
    put_header(&mut response, b"To", to);
    if !contains_tag_parameter(to) {
        // RFC 3261 §8.2.6.2: the server adds a To tag. Derive it from the request so a
        // retransmission gets the same tag without the transport keeping state.
        let tag = stable_tag(&[from, call_id, cseq]);
        response.truncate(response.len() - 2);
        response.put_slice(format!(";tag={tag:016x}\r\n").as_bytes());
    }
    put_header(&mut response, b"Call-ID", call_id);
    put_header(&mut response, b"CSeq", cseq);
    response.put_slice(b"Content-Length: 0\r\n\r\n");
    Some(response.freeze())
}

fn put_header(response: &mut BytesMut, name: &[u8], value: &[u8]) {
    response.put_slice(name);
    response.put_slice(b": ");
    response.put_slice(value);
    response.put_slice(b"\r\n");
}

fn contains_tag_parameter(name_address: &[u8]) -> bool {
    // The tag is a header parameter, so it follows the closing '>' when there is one.
    let parameters = match name_address.iter().rposition(|byte| *byte == b'>') {
        Some(end) => &name_address[end..],
        None => name_address,
    };
    parameters
        .split(|byte| *byte == b';')
        .skip(1)
        .any(|parameter| {
            let name = parameter.split(|byte| *byte == b'=').next().unwrap_or_default();
            trim_whitespace(name).eq_ignore_ascii_case(b"tag")
        })
}

/// FNV-1a over the parts: stable across runs, so equal requests get equal tags.
fn stable_tag(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(b"\0") {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn trim_carriage_return(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !byte.is_ascii_whitespace())
        .map_or(start, |position| position + 1);
    &bytes[start..end]
}
