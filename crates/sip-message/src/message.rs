//! The message: one `Bytes` buffer, an index of spans into it, and pending edits applied
//! when the message is printed.

use crate::header_name::OTHER_ID;
use crate::headers::{CSeq, Contact, Credentials, MediaType, NameAddr, SessionExpires, Via};
use crate::syntax::{is_lws, is_token, is_token_byte, parse_u32, trim};
use crate::uri::Uri;
use crate::{HeaderName, Limits, Method, ParseError};
use bytes::Bytes;
use smallvec::SmallVec;

mod edit;
mod parse;

use parse::trim_start_lws;

/// Byte range `start..end` of the message buffer. `u32` keeps the header index small; the
/// buffer is bounded by [`Limits::max_message_size`] long before `u32` overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Text that is either still in the received buffer or was set by an edit (an index into
/// [`Message::owned`], which keeps the index entries small and `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    Span(Span),
    Owned(u32),
}

/// One header line in the index: 40 bytes, so the inline index of a typical message stays
/// within a few cache lines and moves cheaply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderEntry {
    /// Interned name id ([`HeaderName::lookup_id`]).
    pub(crate) id: u8,
    /// The name as spelled on the wire (`v`, `MaX-fOrWaRdS`) or as given to an edit;
    /// `None` prints the canonical name of `id`.
    pub(crate) name: Option<Value>,
    /// The whole received line (name to line end, folded continuations included) while the
    /// header is untouched; `None` once edited, which makes it print from its parts.
    pub(crate) line: Option<Span>,
    pub(crate) value: Value,
}

#[derive(Debug, Clone)]
pub(crate) enum StartLine {
    Request { method: Method, uri: Value },
    Response { status: u16, reason: Value },
}

/// Inline capacity of the header index: a typical INVITE after a few proxies has 15–25
/// header lines, so most messages never allocate for the index (measured: 24 inline beats
/// 16 once a proxy adds lines, and costs nothing measurable on parse).
const INLINE_HEADERS: usize = 24;

/// A SIP message (RFC 3261 §7) over one shared buffer.
///
/// Parsing indexes the start line, every header line and the body without copying. Typed
/// accessors parse a header value on demand and borrow from the buffer. Edits are recorded
/// in the index and applied by [`Message::write_to`]; every untouched line prints exactly as
/// received.
///
/// Header values are handed out trimmed, with line folding kept as received (CRLF plus
/// white space inside the value); typed views treat folding as ordinary white space.
#[derive(Debug, Clone)]
pub struct Message {
    buffer: Bytes,
    start_line: StartLine,
    /// The received start line including its line end.
    start_line_span: Span,
    start_line_edited: bool,
    headers: SmallVec<[HeaderEntry; INLINE_HEADERS]>,
    body: Value,
    /// Bytes set by edits, referenced by [`Value::Owned`].
    owned: Vec<Bytes>,
    /// First byte of the message (leading CRLFs skipped, RFC 3261 §7.5) and one past its
    /// last byte (end of the Content-Length body, RFC 4475 §3.1.1.8).
    message_span: Span,
    edited: bool,
}

impl Message {
    /// Parses one complete datagram with [`Limits::default`].
    pub fn parse(datagram: Bytes) -> Result<Message, ParseError> {
        Message::parse_with_limits(datagram, &Limits::default())
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start_line {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI bytes as received (or as set by [`Message::set_request_uri`]).
    pub fn request_uri_bytes(&self) -> Option<&[u8]> {
        match &self.start_line {
            StartLine::Request { uri, .. } => Some(self.value(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, parsed on each call; `None` for a response.
    pub fn request_uri(&self) -> Option<Result<Uri<'_>, ParseError>> {
        self.request_uri_bytes().map(Uri::parse)
    }

    /// The status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start_line {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase as received (any bytes, UTF-8 allowed; may be empty).
    pub fn reason(&self) -> Option<&[u8]> {
        match &self.start_line {
            StartLine::Response { reason, .. } => Some(self.value(reason)),
            StartLine::Request { .. } => None,
        }
    }

    fn value(&self, value: &Value) -> &[u8] {
        match *value {
            Value::Span(span) => &self.buffer[span.range()],
            Value::Owned(index) => &self.owned[index as usize],
        }
    }

    fn value_bytes(&self, value: &Value) -> Bytes {
        match *value {
            Value::Span(span) => self.buffer.slice(span.range()),
            Value::Owned(index) => self.owned[index as usize].clone(),
        }
    }

    fn own(&mut self, bytes: Bytes) -> Value {
        self.owned.push(bytes);
        Value::Owned((self.owned.len() - 1) as u32)
    }

    /// The name of `entry` as it prints: wire spelling if known, else canonical.
    fn entry_name_bytes(&self, entry: &HeaderEntry) -> &[u8] {
        match &entry.name {
            Some(name) => self.value(name),
            None => HeaderName::canonical_name(entry.id),
        }
    }

    /// Whether `entry` is a header called `name` (whose id is `id`).
    #[inline(always)]
    fn is_named(&self, entry: &HeaderEntry, id: u8, name: &HeaderName) -> bool {
        entry.id == id && (id != OTHER_ID || self.other_name_matches(entry, name))
    }

    /// Unknown names compare by bytes; kept out of line so the interned case stays a
    /// single compare.
    #[inline(never)]
    fn other_name_matches(&self, entry: &HeaderEntry, name: &HeaderName) -> bool {
        self.entry_name_bytes(entry)
            .eq_ignore_ascii_case(name.as_bytes())
    }

    fn entries<'s, 'n>(
        &'s self,
        name: &'n HeaderName,
    ) -> impl Iterator<Item = &'s HeaderEntry> + use<'s, 'n> {
        let id = name.id();
        self.headers
            .iter()
            .filter(move |entry| self.is_named(entry, id, name))
    }

    fn position_of(&self, name: &HeaderName) -> Option<usize> {
        let id = name.id();
        self.headers
            .iter()
            .position(|entry| self.is_named(entry, id, name))
    }

    fn entry_name(&self, entry: &HeaderEntry) -> HeaderName {
        match (HeaderName::from_id(entry.id), &entry.name) {
            (Some(known), _) => known,
            (None, Some(name)) => HeaderName::Other(self.value_bytes(name)),
            (None, None) => HeaderName::Other(Bytes::new()),
        }
    }

    /// Every header as `(name, value)`, in order, values as [`Message::header`] gives them.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, &[u8])> {
        self.headers
            .iter()
            .map(|entry| (self.entry_name(entry), self.value(&entry.value)))
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The first value of `name`: trimmed, line folding kept as received, the whole line
    /// even for list headers.
    pub fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.entries(name)
            .next()
            .map(|entry| self.value(&entry.value))
    }

    /// Whether a header called `name` is present.
    pub fn has_header(&self, name: &HeaderName) -> bool {
        self.entries(name).next().is_some()
    }

    /// Every value of `name`, in order. For list headers ([`HeaderName::is_list`]) each
    /// line is split on the commas between elements (not inside quotes or `<>`) and empty
    /// elements are skipped.
    pub fn header_values<'s>(
        &'s self,
        name: &HeaderName,
    ) -> impl Iterator<Item = &'s [u8]> + use<'s> {
        self.list_elements(name.clone())
            .filter_map(|element| element.ok().filter(|e| !e.is_empty()))
    }

    /// Elements of every line of `name`, split when the header is a list. An empty
    /// element or an unterminated quote is an error naming the header.
    fn list_elements(&self, name: HeaderName) -> ListElements<'_> {
        ListElements {
            message: self,
            id: name.id(),
            is_list: name.is_list(),
            name,
            next_entry: 0,
            rest: None,
        }
    }

    fn required(&self, name: HeaderName) -> Result<&[u8], ParseError> {
        self.header(&name)
            .ok_or(ParseError::MissingHeader { header: name })
    }

    /// Call-ID (RFC 3261 §20.8): `word [ "@" word ]`, returned as received.
    pub fn call_id(&self) -> Result<&[u8], ParseError> {
        let value = self.required(HeaderName::CallId)?;
        if value.is_empty() || value.iter().any(|b| !(0x21..=0x7e).contains(b)) {
            return Err(ParseError::header(HeaderName::CallId, "not a word"));
        }
        Ok(value)
    }

    /// CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Result<CSeq<'_>, ParseError> {
        CSeq::parse(self.required(HeaderName::CSeq)?)
    }

    /// Every Via value, top first, list elements split (RFC 3261 §20.42).
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> {
        self.list_elements(HeaderName::Via)
            .map(|element| element.and_then(Via::parse))
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        // Direct path (no iterator state): this runs for every message a transaction sees.
        let entry = self
            .entries(&HeaderName::Via)
            .next()
            .ok_or(ParseError::MissingHeader {
                header: HeaderName::Via,
            })?;
        let value = self.value(&entry.value);
        let first = match crate::syntax::first_element_end(value) {
            Ok(Some(comma)) => trim(&value[..comma]),
            Ok(None) => value,
            Err(()) => {
                return Err(ParseError::header(
                    HeaderName::Via,
                    "unterminated quoted string",
                ));
            }
        };
        if first.is_empty() {
            return Err(ParseError::header(HeaderName::Via, "empty list element"));
        }
        Via::parse(first)
    }

    /// From (RFC 3261 §20.20).
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.required(HeaderName::From)?, &HeaderName::From)
    }

    /// To (RFC 3261 §20.39).
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.required(HeaderName::To)?, &HeaderName::To)
    }

    /// Every Contact value (RFC 3261 §20.10), `*` included.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, ParseError>> {
        self.list_elements(HeaderName::Contact)
            .map(|element| element.and_then(Contact::parse))
    }

    fn name_addrs(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        let error_name = name.clone();
        self.list_elements(name)
            .map(move |element| element.and_then(|value| NameAddr::parse(value, &error_name)))
    }

    /// Every Route value, top first (RFC 3261 §20.34).
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::Route)
    }

    /// Every Record-Route value, top first (RFC 3261 §20.30).
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::RecordRoute)
    }

    /// Every Path value (RFC 3327).
    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::Path)
    }

    /// Every Service-Route value (RFC 3608).
    pub fn service_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::ServiceRoute)
    }

    /// Every P-Asserted-Identity value (RFC 3325).
    pub fn asserted_identities(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::PAssertedIdentity)
    }

    fn optional_number(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.header(&name) {
            None => Ok(None),
            Some(value) => parse_u32(trim(value))
                .map(Some)
                .ok_or(ParseError::header(name, "not a 32-bit number")),
        }
    }

    /// Max-Forwards (RFC 3261 §20.22); leading zeros allowed.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.optional_number(HeaderName::MaxForwards)
    }

    /// Expires (RFC 3261 §20.19) in seconds.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.optional_number(HeaderName::Expires)
    }

    /// Content-Length as received (RFC 3261 §20.14).
    pub fn content_length(&self) -> Result<Option<u32>, ParseError> {
        self.optional_number(HeaderName::ContentLength)
    }

    /// Min-Expires (RFC 3261 §20.23).
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.optional_number(HeaderName::MinExpires)
    }

    /// Content-Type (RFC 3261 §20.15).
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, ParseError> {
        self.header(&HeaderName::ContentType)
            .map(MediaType::parse)
            .transpose()
    }

    /// Session-Expires (RFC 4028 §4).
    pub fn session_expires(&self) -> Result<Option<SessionExpires<'_>>, ParseError> {
        self.header(&HeaderName::SessionExpires)
            .map(SessionExpires::parse)
            .transpose()
    }

    fn credentials(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        let error_name = name.clone();
        self.list_elements(name)
            .map(move |value| value.and_then(|value| Credentials::parse(value, &error_name)))
    }

    /// Every Authorization value (RFC 3261 §20.7), one per header line.
    pub fn authorizations(&self) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.credentials(HeaderName::Authorization)
    }

    /// Every Proxy-Authorization value (RFC 3261 §20.28).
    pub fn proxy_authorizations(
        &self,
    ) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.credentials(HeaderName::ProxyAuthorization)
    }

    /// Every WWW-Authenticate challenge (RFC 3261 §20.44).
    pub fn www_authenticates(&self) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.credentials(HeaderName::WwwAuthenticate)
    }

    /// Every Proxy-Authenticate challenge (RFC 3261 §20.27).
    pub fn proxy_authenticates(&self) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.credentials(HeaderName::ProxyAuthenticate)
    }

    /// Supported option tags (RFC 3261 §20.37).
    pub fn supported(&self) -> impl Iterator<Item = &[u8]> {
        self.header_values(&HeaderName::Supported)
    }

    /// Require option tags (RFC 3261 §20.32).
    pub fn require(&self) -> impl Iterator<Item = &[u8]> {
        self.header_values(&HeaderName::Require)
    }

    /// Proxy-Require option tags (RFC 3261 §20.29).
    pub fn proxy_require(&self) -> impl Iterator<Item = &[u8]> {
        self.header_values(&HeaderName::ProxyRequire)
    }

    /// The body (exactly Content-Length bytes; bytes after it in the datagram are dropped).
    pub fn body(&self) -> Bytes {
        self.value_bytes(&self.body)
    }

    /// The buffer the message was parsed from, exactly as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.buffer
    }

    /// Whether any edit was made since parsing.
    pub fn is_edited(&self) -> bool {
        self.edited
    }

    /// Builds a message from parts written by [`crate::MessageBuilder`].
    pub(crate) fn from_parts(
        buffer: Bytes,
        start_line: StartLine,
        start_line_span: Span,
        headers: SmallVec<[HeaderEntry; INLINE_HEADERS]>,
        body: Span,
    ) -> Message {
        Message {
            start_line,
            start_line_span,
            start_line_edited: false,
            headers,
            body: Value::Span(body),
            owned: Vec::new(),
            message_span: Span::new(0, buffer.len()),
            edited: false,
            buffer,
        }
    }
}

/// Iterator over the values of one header name across all its lines, list values split
/// into elements (see [`Message::header_values`]).
struct ListElements<'s> {
    message: &'s Message,
    name: HeaderName,
    id: u8,
    is_list: bool,
    next_entry: usize,
    /// Unread part of the current list line.
    rest: Option<&'s [u8]>,
}

impl<'s> Iterator for ListElements<'s> {
    type Item = Result<&'s [u8], ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(rest) = self.rest.take() {
                let element = match crate::syntax::first_element_end(rest) {
                    Ok(Some(comma)) => {
                        self.rest = Some(&rest[comma + 1..]);
                        trim(&rest[..comma])
                    }
                    Ok(None) => trim(rest),
                    Err(()) => {
                        return Some(Err(ParseError::header(
                            self.name.clone(),
                            "unterminated quoted string",
                        )));
                    }
                };
                if element.is_empty() {
                    return Some(Err(ParseError::header(
                        self.name.clone(),
                        "empty list element",
                    )));
                }
                return Some(Ok(element));
            }
            let message = self.message;
            let offset = message.headers[self.next_entry..]
                .iter()
                .position(|entry| message.is_named(entry, self.id, &self.name))?;
            let entry = &message.headers[self.next_entry + offset];
            self.next_entry += offset + 1;
            let value = message.value(&entry.value);
            if !self.is_list {
                return Some(Ok(value));
            }
            self.rest = Some(value);
        }
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse::parse_start_line;
    use super::*;

    fn start(line: &[u8]) -> Result<StartLine, ParseError> {
        let buffer = Bytes::copy_from_slice(line);
        parse_start_line(&buffer, &buffer, 0)
    }

    #[test]
    fn request_lines() {
        assert!(matches!(
            start(b"INVITE sip:a@b SIP/2.0"),
            Ok(StartLine::Request {
                method: Method::Invite,
                ..
            })
        ));
        assert!(matches!(
            start(b"INVITE sip:a@b sip/2.0"),
            Ok(StartLine::Request { .. })
        ));
        assert!(matches!(
            start(b"invite sip:a@b SIP/2.0"),
            Ok(StartLine::Request {
                method: Method::Extension(_),
                ..
            })
        ));
        assert_eq!(
            start(b"OPTIONS sip:a@b SIP/7.0").unwrap_err(),
            ParseError::UnsupportedVersion
        );
        assert_eq!(
            start(b"OPTIONS sip:a@b SIP/2.1").unwrap_err(),
            ParseError::UnsupportedVersion
        );
        for bad in [
            &b"INVITE  sip:a@b SIP/2.0"[..],
            b"INVITE sip:a@b SIP/2.0 ",
            b"INVITE sip:a@b",
            b"INVITE",
            b"INV(TE sip:a@b SIP/2.0",
            b"INVITE sip:a@b HTTP/1.1",
            b"INVITE sip:a@b SIP/2",
        ] {
            assert!(
                matches!(start(bad), Err(ParseError::MalformedStartLine { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            start(b"INVITE <sip:a@b> SIP/2.0"),
            Err(ParseError::InvalidRequestUri { .. })
        ));
    }

    #[test]
    fn status_lines() {
        assert!(matches!(
            start(b"SIP/2.0 200 OK"),
            Ok(StartLine::Response { status: 200, .. })
        ));
        assert!(matches!(
            start(b"SIP/2.0 100 "),
            Ok(StartLine::Response { status: 100, .. })
        ));
        assert!(matches!(
            start(b"SIP/2.0 180"),
            Ok(StartLine::Response { status: 180, .. })
        ));
        assert_eq!(
            start(b"SIP/3.0 200 OK").unwrap_err(),
            ParseError::UnsupportedVersion
        );
        for bad in [
            &b"SIP/2.0 4294967301 x"[..],
            b"SIP/2.0 099 x",
            b"SIP/2.0 700 x",
            b"SIP/2.0 20 x",
            b"SIP/2.0 2a0 x",
            b"SIP/2.0  200 OK",
        ] {
            assert_eq!(
                start(bad).unwrap_err(),
                ParseError::InvalidStatusCode,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn folded_header_values_keep_their_line_breaks() {
        let message = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject:\r\n  first\r\n\tsecond  \r\nl: 0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            message.header(&HeaderName::Subject),
            Some(&b"first\r\n\tsecond"[..])
        );
        assert_eq!(message.content_length().unwrap(), Some(0));
    }

    #[test]
    fn folding_before_any_header_is_an_error() {
        let error = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\n folded\r\n\r\n",
        ))
        .unwrap_err();
        assert_eq!(error, ParseError::MalformedHeaderLine { line: 1 });
    }

    #[test]
    fn header_lines_need_a_token_and_a_colon() {
        for bad in [
            &b"OPTIONS sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n"[..],
            b"OPTIONS sip:a@b SIP/2.0\r\n: empty name\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nBad(name): x\r\n\r\n",
        ] {
            assert!(matches!(
                Message::parse(Bytes::from_static(bad)),
                Err(ParseError::MalformedHeaderLine { .. })
            ));
        }
    }

    #[test]
    fn leading_crlf_is_skipped_and_not_printed() {
        let message = Message::parse(Bytes::from_static(
            b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            &message.to_bytes()[..],
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn bare_lf_line_ends_are_tolerated() {
        let message = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\nCall-ID: x\nl: 2\n\nab",
        ))
        .unwrap();
        assert_eq!(message.call_id().unwrap(), b"x");
        assert_eq!(message.body(), Bytes::from_static(b"ab"));
    }

    #[test]
    fn missing_content_length_takes_the_rest_of_the_datagram() {
        let message = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nrest",
        ))
        .unwrap();
        assert_eq!(message.body(), Bytes::from_static(b"rest"));
        assert_eq!(message.content_length().unwrap(), None);
    }

    #[test]
    fn error_status_codes() {
        assert_eq!(ParseError::UnsupportedVersion.status_code(), 505);
        assert_eq!(
            ParseError::MessageTooLarge {
                size: 70000,
                limit: 65535
            }
            .status_code(),
            513
        );
        assert_eq!(ParseError::UnsupportedUriScheme.status_code(), 416);
        let missing = ParseError::MissingHeader {
            header: HeaderName::CallId,
        };
        assert_eq!(
            (missing.status_code(), missing.reason_phrase().as_str()),
            (400, "Bad Request - missing Call-ID header")
        );
    }
}
