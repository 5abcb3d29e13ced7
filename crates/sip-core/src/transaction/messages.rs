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
    let mut builder =
        MessageBuilder::response_to(request, code, Bytes::copy_from_slice(reason.as_bytes()));
    if code > 100
        && let Some(tag) = to_tag
    {
        builder = builder.to_tag(Bytes::copy_from_slice(tag));
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
    Bytes::copy_from_slice(request.request_uri_bytes().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn response_copies_vias_in_order_and_the_dialog_headers() {
        let request = invite();
        let response = make_response(&request, 486, "Busy Here", Some(b"xyz"));
        assert_eq!(response.status(), Some(486));
        assert_eq!(response.reason(), Some(&b"Busy Here"[..]));
        let vias: Vec<_> = response.header_values(&HeaderName::Via).collect();
        let request_vias: Vec<_> = request.header_values(&HeaderName::Via).collect();
        assert_eq!(vias, request_vias);
        assert_eq!(vias.len(), 2);
        assert_eq!(response.from().unwrap().tag(), Some(&b"1928301774"[..]));
        assert_eq!(response.to().unwrap().tag(), Some(&b"xyz"[..]));
        assert_eq!(response.call_id().unwrap(), request.call_id().unwrap());
        assert_eq!(response.cseq().unwrap(), request.cseq().unwrap());
        assert!(response.header(&HeaderName::Timestamp).is_none());
        assert!(response.header(&HeaderName::Route).is_none());
        // What we build must read back the same from the wire.
        let reparsed = Message::parse(response.to_bytes()).unwrap();
        assert_eq!(reparsed.to().unwrap().tag(), Some(&b"xyz"[..]));
    }

    #[test]
    fn trying_copies_timestamp_and_gets_no_tag() {
        let response = make_response(&invite(), 100, "Trying", Some(b"xyz"));
        assert_eq!(response.to().unwrap().tag(), None);
        assert_eq!(response.header(&HeaderName::Timestamp), Some(&b"54"[..]));
    }

    #[test]
    fn an_existing_to_tag_is_kept() {
        let request = parse(
            "BYE sip:alice@pc33.atlanta.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10
To: Alice <sip:alice@atlanta.example.com>;tag=1928301774
From: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
Call-ID: a84b4c76e66710
CSeq: 231 BYE
Content-Length: 0

",
        );
        let response = make_response(&request, 200, "OK", Some(b"other"));
        assert_eq!(response.to().unwrap().tag(), Some(&b"1928301774"[..]));
    }

    #[test]
    fn timeout_response_is_a_local_408() {
        let response = make_timeout_response(&invite());
        assert_eq!(response.status(), Some(408));
        assert_eq!(response.call_id().unwrap(), invite().call_id().unwrap());
    }

    #[test]
    fn ack_for_non_2xx_follows_section_17_1_1_3() {
        let request = invite();
        let busy = response(&request, 486);
        let ack = make_ack_for_non_2xx(&request, &busy);
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.request_uri_bytes(), request.request_uri_bytes());
        let vias: Vec<_> = ack.header_values(&HeaderName::Via).collect();
        assert_eq!(
            vias,
            [request.header_values(&HeaderName::Via).next().unwrap()]
        );
        assert_eq!(
            ack.top_via().unwrap().branch(),
            Some(&b"z9hG4bK776asdhds"[..])
        );
        assert_eq!(ack.from().unwrap().tag(), Some(&b"1928301774"[..]));
        assert_eq!(ack.to().unwrap().tag(), Some(&b"a6c85cf"[..]));
        assert_eq!(ack.call_id().unwrap(), request.call_id().unwrap());
        let cseq = ack.cseq().unwrap();
        assert_eq!((cseq.number, cseq.method), (314159, Method::Ack));
        let routes: Vec<_> = ack.header_values(&HeaderName::Route).collect();
        assert_eq!(routes, [&b"<sip:proxy.biloxi.example.com;lr>"[..]]);
        assert_eq!(ack.max_forwards().unwrap(), Some(70));
        Message::parse(ack.to_bytes()).unwrap().validate().unwrap();
    }

    #[test]
    fn cancel_follows_section_9_1() {
        let request = invite();
        let cancel = make_cancel(&request);
        assert_eq!(cancel.method(), Some(&Method::Cancel));
        assert_eq!(cancel.request_uri_bytes(), request.request_uri_bytes());
        assert_eq!(cancel.header_values(&HeaderName::Via).count(), 1);
        assert_eq!(
            cancel.top_via().unwrap().branch(),
            request.top_via().unwrap().branch()
        );
        assert_eq!(cancel.to().unwrap().tag(), None);
        assert_eq!(cancel.from().unwrap().tag(), Some(&b"1928301774"[..]));
        let cseq = cancel.cseq().unwrap();
        assert_eq!((cseq.number, cseq.method), (314159, Method::Cancel));
        assert_eq!(cancel.header_values(&HeaderName::Route).count(), 1);
        Message::parse(cancel.to_bytes())
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn branches_carry_the_magic_cookie_and_128_random_bits() {
        let mut rng = StdRng::seed_from_u64(7);
        let first = new_branch(&mut rng);
        let second = new_branch(&mut rng);
        assert!(first.starts_with(MAGIC_COOKIE));
        assert_eq!(first.len(), MAGIC_COOKIE.len() + 32);
        assert!(
            first[MAGIC_COOKIE.len()..]
                .iter()
                .all(u8::is_ascii_hexdigit)
        );
        assert_ne!(first, second);
        // Same seed, same branch: randomness comes only from the injected generator.
        assert_eq!(new_branch(&mut StdRng::seed_from_u64(7)), first);
    }

    #[test]
    fn tags_are_64_random_bits() {
        let mut rng = StdRng::seed_from_u64(9);
        let tag = new_tag(&mut rng);
        assert_eq!(tag.len(), 16);
        assert_ne!(tag, new_tag(&mut rng));
    }
}
