//! Parsing a datagram into a [`Message`] (start line, header index, Content-Length framing)
//! and [`Message::validate`], the full RFC 3261 / RFC 4475 well-formedness check; apart from
//! the typed readers in `message.rs` and the edits in `edit.rs`.

use super::*;

impl Message {
    /// Parses one complete message: start line, header index and body framed by
    /// Content-Length (the rest of the datagram when absent, RFC 3261 §18.3). Checks the
    /// framing rules of RFC 3261 and RFC 4475; header values are checked when read, or all at
    /// once by [`Message::validate`].
    pub fn parse_with_limits(datagram: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        // Spans are u32, so no limit may let a message past 4 GiB.
        let limit = limits.max_message_size.min(u32::MAX as usize);
        if datagram.len() > limit {
            return Err(ParseError::MessageTooLarge {
                size: datagram.len(),
                limit,
            });
        }
        let bytes: &[u8] = &datagram;
        let mut position = 0;
        while bytes[position..].starts_with(b"\r\n") {
            position += 2;
        }
        if position >= bytes.len() {
            return Err(ParseError::Empty);
        }
        let message_start = position;
        let first_line_end = memchr::memchr(b'\n', &bytes[position..])
            .map(|offset| position + offset)
            .ok_or(ParseError::Unterminated)?;
        let first_line = strip_cr(&bytes[position..first_line_end]);
        let start_line = parse_start_line(&datagram, first_line, position)?;
        let start_line_span = Span::new(position, first_line_end + 1);
        position = first_line_end + 1;

        let mut headers: SmallVec<[HeaderEntry; INLINE_HEADERS]> = SmallVec::new();
        // One searcher over the rest of the buffer: cheaper than a fresh search per line.
        let mut line_ends = memchr::memchr_iter(b'\n', &bytes[position..]);
        let section_start = position;
        let body_start = loop {
            if position == bytes.len() {
                // The datagram ends right after a complete header line: RFC 4475 §3.1.2.15
                // ships such a message, and a datagram cannot carry more, so the header
                // section ends here with an empty body.
                break position;
            }
            let line_end = line_ends
                .next()
                .map(|offset| section_start + offset)
                .ok_or(ParseError::Unterminated)?;
            let line = strip_cr(&bytes[position..line_end]);
            if line.is_empty() {
                break line_end + 1;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                // Folded continuation (RFC 3261 §7.3.1): extends the previous value.
                let previous = headers
                    .last_mut()
                    .ok_or(ParseError::MalformedHeaderLine { line: 1 })?;
                let content_end = position + trim_end_wsp(line).len();
                if let (Some(span), Value::Span(value)) = (&mut previous.line, &mut previous.value)
                {
                    span.end = (line_end + 1) as u32;
                    if content_end > position + leading_wsp(line) {
                        if value.start == value.end {
                            value.start = (position + leading_wsp(line)) as u32;
                        }
                        value.end = content_end as u32;
                    }
                }
                position = line_end + 1;
                continue;
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            // field-name = token, then optional white space and the colon (RFC 3261 §7.3.1);
            // one scan finds the end of the name and checks its characters.
            let name_len = line
                .iter()
                .position(|&b| !is_token_byte(b))
                .unwrap_or(line.len());
            if name_len > limits.max_header_name_len {
                return Err(ParseError::HeaderNameTooLong {
                    length: name_len,
                    limit: limits.max_header_name_len,
                });
            }
            let colon = name_len + leading_wsp(&line[name_len..]);
            if name_len == 0 || line.get(colon) != Some(&b':') {
                return Err(ParseError::MalformedHeaderLine {
                    line: headers.len() + 1,
                });
            }
            let id = HeaderName::lookup_id(&line[..name_len]);
            let value_start = position + colon + 1 + leading_wsp(&line[colon + 1..]);
            let value_end = (position + trim_end_wsp(line).len()).max(value_start);
            headers.push(HeaderEntry {
                id,
                name: Some(Value::Span(Span::new(position, position + name_len))),
                line: Some(Span::new(position, line_end + 1)),
                value: Value::Span(Span::new(value_start, value_end)),
            });
            position = line_end + 1;
        };
        // Read after the loop so a folded Content-Length value is seen whole.
        let mut content_length: Option<u32> = None;
        let content_length_id = HeaderName::ContentLength.id();
        for entry in headers.iter().filter(|entry| entry.id == content_length_id) {
            let Value::Span(span) = entry.value else {
                continue;
            };
            let length = parse_u32(&bytes[span.range()]).ok_or_else(|| {
                ParseError::header(HeaderName::ContentLength, "not a non-negative number")
            })?;
            match content_length {
                Some(previous) if previous != length => {
                    return Err(ParseError::ConflictingContentLength);
                }
                Some(_) => {
                    return Err(ParseError::DuplicateHeader {
                        header: HeaderName::ContentLength,
                    });
                }
                None => content_length = Some(length),
            }
        }
        let available = bytes.len() - body_start;
        let body_end = match content_length {
            Some(length) => {
                let length = length as usize;
                if length > available {
                    return Err(ParseError::BodyTruncated {
                        declared: length,
                        available,
                    });
                }
                body_start + length
            }
            None => bytes.len(),
        };
        Ok(Message {
            start_line,
            start_line_span,
            start_line_edited: false,
            headers,
            body: Value::Span(Span::new(body_start, body_end)),
            owned: Vec::new(),
            message_span: Span::new(message_start, body_end),
            edited: false,
            buffer: datagram,
        })
    }

    /// Checks everything RFC 3261 and RFC 4475 require of a well-formed message beyond
    /// framing: the Request-URI (no `?headers`, RFC 3261 §19.1.5), the mandatory headers
    /// (Via, From, To, Call-ID, CSeq: §8.1.1), single-instance headers appearing once
    /// (RFC 4475 §3.3.8), CSeq method equal to the request method (§8.1.1.5), and the
    /// syntax of every Via, From, To, Contact, Route, Record-Route, Max-Forwards and
    /// Content-Type value.
    pub fn validate(&self) -> Result<(), ParseError> {
        if let Some(uri) = self.request_uri() {
            let uri = uri.map_err(|error| match error {
                ParseError::InvalidUri { reason } => ParseError::InvalidRequestUri { reason },
                other => other,
            })?;
            if uri.headers.is_some() {
                return Err(ParseError::InvalidRequestUri {
                    reason: "headers component in the Request-URI",
                });
            }
        }
        for header in [
            HeaderName::CallId,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
        ] {
            if self.entries(&header).nth(1).is_some() {
                return Err(ParseError::DuplicateHeader { header });
            }
        }
        if self.entries(&HeaderName::Via).next().is_none() {
            return Err(ParseError::MissingHeader {
                header: HeaderName::Via,
            });
        }
        for via in self.vias() {
            via?;
        }
        self.from()?;
        self.to()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        if let Some(method) = self.method()
            && *method != cseq.method
        {
            return Err(ParseError::MethodMismatch);
        }
        self.max_forwards()?;
        for contact in self.contacts() {
            contact?;
        }
        for route in self.routes().chain(self.record_routes()) {
            route?;
        }
        self.content_type()?;
        Ok(())
    }

    /// For elements that serve only `sip`, `sips` and `tel` targets: any other Request-URI
    /// scheme is [`ParseError::UnsupportedUriScheme`], answered with 416 (RFC 3261 §8.2.2.1,
    /// RFC 4475 §3.3.2). Responses pass.
    pub fn check_request_uri_scheme(&self) -> Result<(), ParseError> {
        match self.request_uri() {
            None => Ok(()),
            Some(uri) => match uri?.scheme {
                crate::Scheme::Sip | crate::Scheme::Sips | crate::Scheme::Tel => Ok(()),
                crate::Scheme::Other(_) => Err(ParseError::UnsupportedUriScheme),
            },
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

fn leading_wsp(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()
}

fn trim_end_wsp(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

pub(super) fn trim_start_lws(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if is_lws(*first) {
            bytes = rest;
        } else {
            break;
        }
    }
    bytes
}

/// Parses the request line (RFC 3261 §7.1: `Method SP Request-URI SP SIP-Version`, single
/// SPs only, RFC 4475 §3.1.2.9/§3.1.2.10) or the status line (§7.2).
pub(super) fn parse_start_line(
    buffer: &Bytes,
    line: &[u8],
    offset: usize,
) -> Result<StartLine, ParseError> {
    let malformed = |reason| ParseError::MalformedStartLine { reason };
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        let first_space =
            crate::syntax::find_byte(b' ', line).ok_or(malformed("no status code"))?;
        check_version(&line[..first_space])?;
        let rest = &line[first_space + 1..];
        // A status line without the SP before an empty reason is tolerated (robustness).
        let code_end = crate::syntax::find_byte(b' ', rest).unwrap_or(rest.len());
        let code = &rest[..code_end];
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::InvalidStatusCode);
        }
        let status = u16::from(code[0] - b'0') * 100
            + u16::from(code[1] - b'0') * 10
            + u16::from(code[2] - b'0');
        if !(100..=699).contains(&status) {
            return Err(ParseError::InvalidStatusCode);
        }
        let reason = rest.get(code_end + 1..).unwrap_or_default();
        if reason.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(malformed("control character in the reason phrase"));
        }
        let reason_start = (offset + first_space + 1 + code_end + 1).min(offset + line.len());
        return Ok(StartLine::Response {
            status,
            reason: Value::Span(Span::new(reason_start, reason_start + reason.len())),
        });
    }
    let first_space = crate::syntax::find_byte(b' ', line).ok_or(malformed("no Request-URI"))?;
    let last_space = memchr::memrchr(b' ', line).unwrap_or(first_space);
    let method = &line[..first_space];
    if !is_token(method) {
        return Err(malformed("method is not a token"));
    }
    if last_space == first_space {
        return Err(malformed("no SIP-Version"));
    }
    let version = &line[last_space + 1..];
    if version.is_empty() {
        return Err(malformed("trailing white space after the SIP-Version"));
    }
    let uri = &line[first_space + 1..last_space];
    if uri.is_empty() || uri.iter().any(|&b| b == b' ' || b == b'\t') {
        return Err(malformed("more than one SP between request-line elements"));
    }
    check_version(version)?;
    if uri[0] == b'<' {
        return Err(ParseError::InvalidRequestUri {
            reason: "Request-URI enclosed in <>",
        });
    }
    let uri_start = offset + first_space + 1;
    Ok(StartLine::Request {
        method: Method::from_shared(buffer, method),
        uri: Value::Span(Span::new(uri_start, uri_start + uri.len())),
    })
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT` (case-insensitive); only 2.0 is spoken
/// (RFC 3261 §7.1), other versions get 505.
fn check_version(version: &[u8]) -> Result<(), ParseError> {
    if version.len() < 4 || !version[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ParseError::MalformedStartLine {
            reason: "bad SIP-Version",
        });
    }
    let number = &version[4..];
    let dot = crate::syntax::find_byte(b'.', number).ok_or(ParseError::MalformedStartLine {
        reason: "bad SIP-Version",
    })?;
    let (major, minor) = (&number[..dot], &number[dot + 1..]);
    if major.is_empty() || minor.is_empty() || !major.iter().chain(minor).all(u8::is_ascii_digit) {
        return Err(ParseError::MalformedStartLine {
            reason: "bad SIP-Version",
        });
    }
    if number != b"2.0" {
        return Err(ParseError::UnsupportedVersion);
    }
    Ok(())
}
