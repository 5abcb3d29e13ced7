//! CPU per forwarded message through the LB's pure core (no sockets): a REGISTER from a NATed
//! phone parsed, validated, Via-stamped, checked and rewritten (Path, Via, X-Voxide-Source,
//! Max-Forwards), and the 200 OK on its way back.

use std::hint::black_box;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lb::forward::{Action, Forwarder, ForwarderConfig, Inbound, PublicInterface, receive};
use sip_message::{Message, MessageBuilder};
use sip_net::TransportProtocol;

const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-524287-1---b3c5ddd8a6f4e1d2;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@10.0.0.5:5060;rinstance=6ad2c0e2b55f1d01;transport=UDP>\r\n\
To: <sip:alice@example.com>\r\n\
From: <sip:alice@example.com>;tag=a4e3c1f0\r\n\
Call-ID: ZjM2YjU0NmQ5ZTU2NTc0YjY3NDBiYjNjZWNmMzQ1ZDI\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Zoiper v2.10.20.4\r\n\
Authorization: Digest username=\"alice\",realm=\"example.com\",nonce=\"1732540000.abcdef0123456789\",uri=\"sip:example.com\",response=\"0123456789abcdef0123456789abcdef\",algorithm=MD5\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\r\n";

fn forwarder() -> Forwarder {
    let public: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    Forwarder::new(ForwarderConfig {
        public: vec![PublicInterface {
            transport: TransportProtocol::Udp,
            bound: public,
            advertised: public,
        }],
        internal: "127.0.0.1:5064".parse().unwrap(),
        proxy: "127.0.0.1:5062".parse().unwrap(),
        trusted_proxies: Vec::new(),
        domains: ["example.com".to_owned()].into_iter().collect(),
        look_up_unknown_domains: false,
    })
}

fn bench(criterion: &mut Criterion) {
    let forwarder = forwarder();
    let phone = Inbound {
        transport: TransportProtocol::Udp,
        local: "192.0.2.10:5060".parse().unwrap(),
        remote: "203.0.113.5:40000".parse().unwrap(),
        connection: None,
    };
    let proxy = Inbound {
        transport: TransportProtocol::Udp,
        local: "127.0.0.1:5064".parse().unwrap(),
        remote: "127.0.0.1:5062".parse().unwrap(),
        connection: None,
    };
    let datagram = Bytes::from_static(REGISTER.as_bytes());
    let forwarded = match forwarder.handle(receive(datagram.clone(), phone.remote).unwrap(), &phone)
    {
        Action::Forward { message, .. } => Message::parse(message).unwrap(),
        other => panic!("REGISTER not forwarded: {other:?}"),
    };
    let ok = MessageBuilder::response_to(&forwarded, 200, "OK")
        .to_tag("ok1")
        .build()
        .to_bytes();

    let mut group = criterion.benchmark_group("lb_forward");
    group.throughput(Throughput::Elements(1));
    group.bench_function("register_receive_and_forward", |bencher| {
        bencher.iter(|| {
            let message = receive(black_box(datagram.clone()), phone.remote).unwrap();
            black_box(forwarder.handle(message, &phone))
        })
    });
    group.bench_function("register_forward_only", |bencher| {
        let received = receive(datagram.clone(), phone.remote).unwrap();
        bencher.iter(|| black_box(forwarder.handle(black_box(received.clone()), &phone)))
    });
    group.bench_function("response_200_receive_and_forward", |bencher| {
        bencher.iter(|| {
            let message = receive(black_box(ok.clone()), proxy.remote).unwrap();
            black_box(forwarder.handle(message, &proxy))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
