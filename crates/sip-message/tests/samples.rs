//! The sample messages in `tests/data/` (benchmark inputs and fuzz seeds) are valid and
//! expose the values the benchmarks read.

use bytes::Bytes;
use sip_message::{HeaderName, Host, Message, Method};

#[test]
fn invite_sample() {
    let message = Message::parse(Bytes::from_static(include_bytes!("data/invite.sip"))).unwrap();
    message.validate().unwrap();
    assert_eq!(message.method(), Some(&Method::Invite));
    assert_eq!(
        message.call_id().unwrap(),
        b"3848276298220188511@198.51.100.10"
    );
    let via = message.top_via().unwrap();
    assert_eq!(via.branch(), Some(&b"z9hG4bK-524287-1---7f3a9c2e1d"[..]));
    assert_eq!(
        (via.host, via.port, via.rport()),
        (Host::Ipv4(b"203.0.113.5"), Some(5060), Some(None))
    );
    assert_eq!(message.vias().count(), 2);
    assert_eq!(message.from().unwrap().tag(), Some(&b"a73kszlfl"[..]));
    assert_eq!(message.cseq().unwrap().number, 314159);
    assert_eq!(message.record_routes().count(), 1);
    let identity = message.asserted_identities().next().unwrap().unwrap();
    assert_eq!(identity.uri.param(b"user"), Some(Some(&b"phone"[..])));
    assert_eq!(
        message.supported().collect::<Vec<_>>(),
        [&b"replaces"[..], b"timer", b"100rel"]
    );
    assert_eq!(message.header_values(&HeaderName::Allow).count(), 9);
    let session = message.session_expires().unwrap().unwrap();
    assert_eq!(
        (session.delta_seconds, session.refresher()),
        (1800, Some(&b"uac"[..]))
    );
    assert_eq!(
        message.body().len() as u32,
        message.content_length().unwrap().unwrap()
    );
}

#[test]
fn register_sample() {
    let message = Message::parse(Bytes::from_static(include_bytes!("data/register.sip"))).unwrap();
    message.validate().unwrap();
    assert_eq!(message.method(), Some(&Method::Register));
    assert_eq!(message.expires().unwrap(), Some(3600));
    let contact = message.contacts().next().unwrap().unwrap();
    assert_eq!(contact.expires(), Some(3600));
    let address = contact.address().unwrap();
    assert_eq!(
        address.param(b"+sip.instance"),
        Some(Some(
            &b"\"<urn:uuid:00000000-0000-1000-8000-00a0c9e1f2d3>\""[..]
        ))
    );
    assert_eq!(address.uri.param(b"transport"), Some(Some(&b"udp"[..])));
    let credentials = message.authorizations().next().unwrap().unwrap();
    assert!(credentials.is_digest());
    assert_eq!(credentials.param(b"username").as_deref(), Some(&b"bob"[..]));
    assert_eq!(
        credentials.param(b"uri").as_deref(),
        Some(&b"sip:voxide.example.net"[..])
    );
    assert_eq!(credentials.param(b"nc").as_deref(), Some(&b"00000001"[..]));
    assert_eq!(
        credentials.raw_param(b"nonce"),
        Some(&b"\"Z1vC2GdbwKVJx4Q9c3gA8fEoQk3mLq0R\""[..])
    );
    assert_eq!(credentials.params.len(), 9);
    assert!(message.proxy_authorizations().next().is_none());
}
