//! Building new requests and responses from scratch.

use crate::message::{HeaderEntry, Span, StartLine, Value};
use crate::{HeaderName, Message, Method};
use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

#[derive(Debug, Clone)]
enum Start {
    Request(Method, Bytes),
    Response(u16, Bytes),
}

/// Builds a new message. Headers print in the order given, then Content-Type (when a body
/// is set) and a Content-Length that always matches the body.
///
/// ```
/// use sip_message::{HeaderName, MessageBuilder, Method};
/// let options = MessageBuilder::request(Method::Options, "sip:bob@example.com")
///     .header(HeaderName::Via, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")
///     .header(HeaderName::CallId, "abc@192.0.2.1")
///     .build();
/// assert_eq!(options.call_id().unwrap(), b"abc@192.0.2.1");
/// ```
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    start: Start,
    headers: Vec<(HeaderName, Bytes)>,
    body: Option<(Bytes, Bytes)>,
    to_tag: Option<Bytes>,
}

impl MessageBuilder {
    /// Starts a request line `METHOD uri SIP/2.0`.
    pub fn request(method: Method, uri: impl Into<Bytes>) -> MessageBuilder {
        MessageBuilder {
            start: Start::Request(method, uri.into()),
            headers: Vec::new(),
            body: None,
            to_tag: None,
        }
    }

    /// Starts a status line `SIP/2.0 code reason`. Codes outside 100..=699 are the caller's
    /// mistake and are printed as given.
    pub fn response(status: u16, reason: impl Into<Bytes>) -> MessageBuilder {
        MessageBuilder {
            start: Start::Response(status, reason.into()),
            headers: Vec::new(),
            body: None,
            to_tag: None,
        }
    }

    /// A response to `request` with its Via lines, From, To, Call-ID and CSeq copied
    /// byte for byte (RFC 3261 §8.2.6.2); add the To tag with [`MessageBuilder::to_tag`].
    pub fn response_to(request: &Message, status: u16, reason: impl Into<Bytes>) -> MessageBuilder {
        let mut builder = MessageBuilder::response(status, reason);
        for (name, value) in request.headers() {
            let copied = matches!(
                name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            );
            if copied {
                builder
                    .headers
                    .push((name, request.as_bytes().slice_ref_or_copy(value)));
            }
        }
        builder
    }

    /// Adds a header line.
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> MessageBuilder {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(
        mut self,
        content_type: impl Into<Bytes>,
        body: impl Into<Bytes>,
    ) -> MessageBuilder {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// Appends `;tag=<tag>` to the To value when it has no tag yet (RFC 3261 §8.2.6.2).
    pub fn to_tag(mut self, tag: impl Into<Bytes>) -> MessageBuilder {
        self.to_tag = Some(tag.into());
        self
    }

    /// Writes the message and indexes it; the result reads and edits like a parsed one.
    pub fn build(self) -> Message {
        let mut out =
            BytesMut::with_capacity(256 + self.body.as_ref().map_or(0, |(_, body)| body.len()));
        let mut spans: SmallVec<[(HeaderName, Span, Span, Span); 16]> = SmallVec::new();
        let start_line = match &self.start {
            Start::Request(method, uri) => {
                out.extend_from_slice(method.as_bytes());
                out.put_u8(b' ');
                let uri_start = out.len();
                out.extend_from_slice(uri);
                let uri_span = Span::new(uri_start, out.len());
                out.extend_from_slice(b" SIP/2.0\r\n");
                StartLine::Request {
                    method: method.clone(),
                    uri: Value::Span(uri_span),
                }
            }
            Start::Response(status, reason) => {
                out.extend_from_slice(b"SIP/2.0 ");
                out.extend_from_slice(format!("{status:03}").as_bytes());
                out.put_u8(b' ');
                let reason_start = out.len();
                out.extend_from_slice(reason);
                let reason_span = Span::new(reason_start, out.len());
                out.extend_from_slice(b"\r\n");
                StartLine::Response {
                    status: *status,
                    reason: Value::Span(reason_span),
                }
            }
        };
        let start_line_span = Span::new(0, out.len());
        let mut write = |out: &mut BytesMut, name: &HeaderName, value: &[u8], suffix: &[u8]| {
            let line_start = out.len();
            out.extend_from_slice(name.as_bytes());
            let name_span = Span::new(line_start, out.len());
            out.extend_from_slice(b": ");
            let value_start = out.len();
            out.extend_from_slice(value);
            out.extend_from_slice(suffix);
            let value_span = Span::new(value_start, out.len());
            out.extend_from_slice(b"\r\n");
            spans.push((
                name.clone(),
                Span::new(line_start, out.len()),
                name_span,
                value_span,
            ));
        };
        let mut tag_pending = self.to_tag.as_ref();
        for (name, value) in &self.headers {
            if matches!(name, HeaderName::ContentLength)
                || (self.body.is_some() && *name == HeaderName::ContentType)
            {
                continue;
            }
            let mut suffix = Vec::new();
            if *name == HeaderName::To
                && let Some(tag) = tag_pending.take()
            {
                let has_tag = crate::headers::NameAddr::parse(value, &HeaderName::To)
                    .is_ok_and(|to| to.tag().is_some());
                if !has_tag {
                    suffix.extend_from_slice(b";tag=");
                    suffix.extend_from_slice(tag);
                }
            }
            write(&mut out, name, value, &suffix);
        }
        let body = self.body.as_ref().map(|(content_type, body)| {
            write(&mut out, &HeaderName::ContentType, content_type, b"");
            body.clone()
        });
        let body = body.unwrap_or_default();
        write(
            &mut out,
            &HeaderName::ContentLength,
            body.len().to_string().as_bytes(),
            b"",
        );
        out.extend_from_slice(b"\r\n");
        let body_start = out.len();
        out.extend_from_slice(&body);
        let body_span = Span::new(body_start, out.len());
        let headers = spans
            .into_iter()
            .map(|(name, line, name_span, value)| HeaderEntry {
                id: name.id(),
                name: Some(Value::Span(name_span)),
                line: Some(line),
                value: Value::Span(value),
            })
            .collect();
        Message::from_parts(
            out.freeze(),
            start_line,
            start_line_span,
            headers,
            body_span,
        )
    }
}

/// Shares the parent buffer when `part` lies inside it, else copies.
trait SliceRefOrCopy {
    fn slice_ref_or_copy(&self, part: &[u8]) -> Bytes;
}

impl SliceRefOrCopy for Bytes {
    fn slice_ref_or_copy(&self, part: &[u8]) -> Bytes {
        let base = self.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if start >= base && start + part.len() <= base + self.len() {
            self.slice_ref(part)
        } else {
            Bytes::copy_from_slice(part)
        }
    }
}
