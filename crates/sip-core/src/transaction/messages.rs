//! Building the messages transactions and their users need: responses (RFC 3261 §8.2.6), the ACK
//! for a non-2xx final response (§17.1.1.3), CANCEL (§9.1), branch and tag values (§8.1.1.7,
//! §19.3).

use bytes::{BufMut, Bytes, BytesMut};
use rand_core::RngCore;
use sip_message::{HeaderName, Message, MessageBuilder, Method};

use super::MAGIC_COOKIE;

/// Max-Forwards for requests this module creates when the original has none (RFC 3261 §8.1.1.6).
const DEFAULT_MAX_FORWARDS: &[u8] = b"70";

/// Builds a response to `request` (RFC 3261 §8.2.6): every Via in order, From, To, Call-ID and
/// CSeq copied; `to_tag` is added to To when To has no tag and the status is above 100
/// (§8.2.6.2); a 100 Trying copies Timestamp (§8.2.6.1). Usable statelessly and by
/// transactions. Headers the request lacks are left out rather than invented.
pub fn make_response(request: &Message, code: u16, reason: &str, to_tag: Option<&[u8]>) -> Message {
    let mut builder = MessageBuilder::response(code, reason);
    for via in request.header_values(&HeaderName::Via) {
        builder = builder.header(HeaderName::Via, Bytes::copy_from_slice(via));
    }
    if let Some(from) = request.header(&HeaderName::From) {
        builder = builder.header(HeaderName::From, Bytes::copy_from_slice(from));
    }
    if let Some(to) = request.header(&HeaderName::To) {
        let has_tag = request.to().map(|to| to.tag().is_some()).unwrap_or(true);
        let value = match to_tag {
            Some(tag) if code > 100 && !has_tag => with_tag(to, tag),
            _ => Bytes::copy_from_slice(to),
        };
        builder = builder.header(HeaderName::To, value);
    }
    if let Some(call_id) = request.header(&HeaderName::CallId) {
        builder = builder.header(HeaderName::CallId, Bytes::copy_from_slice(call_id));
    }
    if let Some(cseq) = request.header(&HeaderName::CSeq) {
        builder = builder.header(HeaderName::CSeq, Bytes::copy_from_slice(cseq));
    }
    if code == 100
        && let Some(timestamp) = request.header(&HeaderName::Timestamp)
    {
        builder = builder.header(HeaderName::Timestamp, Bytes::copy_from_slice(timestamp));
    }
    builder.build()
}

/// The 408 a client transaction user acts on when Timer B or F fires (RFC 3261 §8.1.3.1:
/// "treated as if a 408 had been received"), built locally from the request.
pub fn make_timeout_response(request: &Message) -> Message {
    make_response(request, 408, "Request Timeout", None)
}

/// The ACK a client INVITE transaction sends for a 300–699 response (RFC 3261 §17.1.1.3):
/// Request-URI, Call-ID, From and CSeq number of the INVITE, CSeq method ACK, only the top Via,
/// To from the response (it carries the tag), Route from the INVITE.
pub fn make_ack_for_non_2xx(invite: &Message, response: &Message) -> Message {
    let mut builder = MessageBuilder::request(Method::Ack, request_uri(invite));
    if let Some(via) = invite.header_values(&HeaderName::Via).next() {
        builder = builder.header(HeaderName::Via, Bytes::copy_from_slice(via));
    }
    builder = builder.header(HeaderName::MaxForwards, max_forwards(invite));
    if let Some(from) = invite.header(&HeaderName::From) {
        builder = builder.header(HeaderName::From, Bytes::copy_from_slice(from));
    }
    if let Some(to) = response.header(&HeaderName::To) {
        builder = builder.header(HeaderName::To, Bytes::copy_from_slice(to));
    }
    if let Some(call_id) = invite.header(&HeaderName::CallId) {
        builder = builder.header(HeaderName::CallId, Bytes::copy_from_slice(call_id));
    }
    if let Ok(cseq) = invite.cseq() {
        builder = builder.header(HeaderName::CSeq, cseq_value(cseq.number, &Method::Ack));
    }
    for route in invite.header_values(&HeaderName::Route) {
        builder = builder.header(HeaderName::Route, Bytes::copy_from_slice(route));
    }
    builder.build()
}

/// A CANCEL for `request` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From and CSeq number,
/// CSeq method CANCEL, one Via equal to the request's top Via (so it carries the same branch),
/// and the request's Route headers.
pub fn make_cancel(request: &Message) -> Message {
    let mut builder = MessageBuilder::request(Method::Cancel, request_uri(request));
    if let Some(via) = request.header_values(&HeaderName::Via).next() {
        builder = builder.header(HeaderName::Via, Bytes::copy_from_slice(via));
    }
    builder = builder.header(HeaderName::MaxForwards, max_forwards(request));
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        if let Some(value) = request.header(&name) {
            builder = builder.header(name, Bytes::copy_from_slice(value));
        }
    }
    if let Ok(cseq) = request.cseq() {
        builder = builder.header(HeaderName::CSeq, cseq_value(cseq.number, &Method::Cancel));
    }
    for route in request.header_values(&HeaderName::Route) {
        builder = builder.header(HeaderName::Route, Bytes::copy_from_slice(route));
    }
    builder.build()
}

/// A new RFC 3261 branch: the magic cookie followed by 128 random bits in hex (RFC 3261
/// §8.1.1.7 asks for uniqueness across space and time; 64 bits would do, 128 leaves margin).
pub fn new_branch<R: RngCore + ?Sized>(rng: &mut R) -> Bytes {
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    let mut branch = BytesMut::with_capacity(MAGIC_COOKIE.len() + 32);
    branch.put_slice(MAGIC_COOKIE);
    branch.put_slice(hex::encode(random).as_bytes());
    branch.freeze()
}

/// A new From/To tag: 64 random bits in hex (RFC 3261 §19.3 asks for at least 32).
pub fn new_tag<R: RngCore + ?Sized>(rng: &mut R) -> Bytes {
    let mut random = [0u8; 8];
    rng.fill_bytes(&mut random);
    Bytes::from(hex::encode(random))
}

fn with_tag(to: &[u8], tag: &[u8]) -> Bytes {
    let mut value = BytesMut::with_capacity(to.len() + 5 + tag.len());
    value.put_slice(to);
    value.put_slice(b";tag=");
    value.put_slice(tag);
    value.freeze()
}

fn cseq_value(number: u32, method: &Method) -> Bytes {
    let mut value = BytesMut::with_capacity(16);
    value.put_slice(number.to_string().as_bytes());
    value.put_u8(b' ');
    value.put_slice(method.as_bytes());
    value.freeze()
}

fn max_forwards(request: &Message) -> Bytes {
    Bytes::copy_from_slice(
        request
            .header(&HeaderName::MaxForwards)
            .unwrap_or(DEFAULT_MAX_FORWARDS),
    )
}

fn request_uri(request: &Message) -> Bytes {
    match request.request_uri() {
        Some(Ok(uri)) => Bytes::copy_from_slice(uri.raw),
        _ => Bytes::new(),
    }
}
