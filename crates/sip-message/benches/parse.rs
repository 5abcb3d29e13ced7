//! Parse and print costs on typical messages (samples in `tests/data/`, also fuzz seeds).

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use sip_message::{HeaderName, Message};
use std::hint::black_box;

const INVITE: &[u8] = include_bytes!("../tests/data/invite.sip");
const REGISTER: &[u8] = include_bytes!("../tests/data/register.sip");

fn parse_invite(c: &mut Criterion) {
    let datagram = Bytes::from_static(INVITE);
    c.bench_function(
        "parse INVITE + Call-ID, top Via branch, From tag, CSeq",
        |b| {
            b.iter(|| {
                let message = Message::parse(black_box(datagram.clone())).unwrap();
                black_box(message.call_id().unwrap());
                black_box(message.top_via().unwrap().branch());
                black_box(message.from().unwrap().tag());
                black_box(message.cseq().unwrap().number);
            })
        },
    );
    c.bench_function("parse INVITE only", |b| {
        b.iter(|| black_box(Message::parse(black_box(datagram.clone())).unwrap()))
    });
    c.bench_function("parse + validate INVITE", |b| {
        b.iter(|| {
            let message = Message::parse(black_box(datagram.clone())).unwrap();
            message.validate().unwrap();
            black_box(message)
        })
    });
}

fn parse_register(c: &mut Criterion) {
    let datagram = Bytes::from_static(REGISTER);
    c.bench_function(
        "parse REGISTER + Call-ID, branch, From tag, CSeq, Authorization",
        |b| {
            b.iter(|| {
                let message = Message::parse(black_box(datagram.clone())).unwrap();
                black_box(message.call_id().unwrap());
                black_box(message.top_via().unwrap().branch());
                black_box(message.from().unwrap().tag());
                black_box(message.cseq().unwrap().number);
                let credentials = message.authorizations().next().unwrap().unwrap();
                black_box(credentials.param(b"nonce"));
                black_box(credentials.param(b"response"));
            })
        },
    );
}

fn print_after_edit(c: &mut Criterion) {
    let datagram = Bytes::from_static(INVITE);
    let mut with_route = BytesMut::new();
    let header_end = INVITE.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    with_route.extend_from_slice(&INVITE[..header_end]);
    with_route.extend_from_slice(b"Route: <sip:203.0.113.9;lr>, <sip:203.0.113.10;lr>\r\n");
    with_route.extend_from_slice(&INVITE[header_end..]);
    let with_route = with_route.freeze();
    c.bench_function(
        "parse + push Via + pop Route + add Record-Route + print",
        |b| {
            let mut out = BytesMut::with_capacity(2048);
            b.iter(|| {
                let mut message = Message::parse(black_box(with_route.clone())).unwrap();
                message.push_via(Bytes::from_static(
                    b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-voxide-1",
                ));
                message.remove_first_value(&HeaderName::Route);
                message.add_header_before(
                    HeaderName::RecordRoute,
                    Bytes::from_static(b"<sip:192.0.2.1;lr>"),
                );
                out.clear();
                message.write_to(&mut out);
                black_box(out.len())
            })
        },
    );
    c.bench_function("print unedited (shares buffer)", |b| {
        let message = Message::parse(datagram.clone()).unwrap();
        b.iter(|| black_box(message.to_bytes()))
    });
}

criterion_group!(benches, parse_invite, parse_register, print_after_edit);
criterion_main!(benches);
