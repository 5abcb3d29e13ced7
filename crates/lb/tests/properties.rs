//! Properties of the forwarding core over generated input.

use std::net::SocketAddr;

use bytes::Bytes;
use lb::forward::{Action, Forwarder, ForwarderConfig, Inbound, PublicInterface, receive};
use proptest::prelude::*;
use sip_message::Message;
use sip_net::TransportProtocol;

fn forwarder() -> Forwarder {
    let public: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    Forwarder::new(ForwarderConfig {
        public: vec![
            PublicInterface {
                transport: TransportProtocol::Udp,
                bound: public,
                advertised: public,
            },
            PublicInterface {
                transport: TransportProtocol::Tcp,
                bound: public,
                advertised: public,
            },
        ],
        internal: "127.0.0.1:5064".parse().unwrap(),
        proxy: "127.0.0.1:5062".parse().unwrap(),
        trusted_proxies: Vec::new(),
        domains: ["example.com".to_owned()].into_iter().collect(),
        look_up_unknown_domains: false,
    })
}

fn phone() -> Inbound {
    Inbound {
        transport: TransportProtocol::Udp,
        local: "192.0.2.10:5060".parse().unwrap(),
        remote: "203.0.113.5:40000".parse().unwrap(),
        connection: None,
    }
}

fn proxy() -> Inbound {
    Inbound {
        transport: TransportProtocol::Udp,
        local: "127.0.0.1:5064".parse().unwrap(),
        remote: "127.0.0.1:5062".parse().unwrap(),
        connection: None,
    }
}

const TEMPLATE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKabc;rport\r\n\
Route: <sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: prop-1\r\n\
CSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@10.0.0.5:5060;alias=1.2.3.4~5~1>\r\n\
X-Voxide-Source: udp 1.2.3.4:5\r\n\
Content-Length: 0\r\n\r\n";

/// Whatever the core emits is a well-formed message: forwards validate, replies are
/// error responses to the request.
fn check(action: Action) {
    match action {
        Action::Forward { message, .. } => {
            let message = Message::parse(message).expect("forwarded message parses");
            message.validate().expect("forwarded message validates");
            let leaked = message
                .headers()
                .filter(|(name, _)| name.as_bytes().eq_ignore_ascii_case(b"X-Voxide-Source"))
                .count();
            assert!(leaked <= 1, "client's X-Voxide-Source survived");
        }
        Action::Reply { response, status } => {
            let response = Message::parse(response).expect("reply parses");
            assert_eq!(response.status(), Some(status));
            assert!((400..700).contains(&status));
        }
        Action::Drop(_) => {}
        Action::LookUpDomain(lookup) => panic!("lookups are off here: {}", lookup.domain),
    }
}

proptest! {
    #[test]
    fn mutated_messages_give_well_formed_output(
        position in 0usize..TEMPLATE.len(),
        replacement in proptest::collection::vec(any::<u8>(), 0..8),
        from_proxy in any::<bool>(),
    ) {
        let mut bytes = TEMPLATE.as_bytes().to_vec();
        let end = (position + replacement.len().max(1)).min(bytes.len());
        bytes.splice(position..end, replacement);
        let inbound = if from_proxy { proxy() } else { phone() };
        if let Ok(message) = receive(Bytes::from(bytes), inbound.remote) {
            check(forwarder().handle(message, &inbound));
        }
    }

    #[test]
    fn branch_is_a_function_of_the_incoming_branch(
        first in "[a-zA-Z0-9.!%*_+`'~-]{1,24}",
        second in "[a-zA-Z0-9.!%*_+`'~-]{1,24}",
    ) {
        let branch_of = |branch: &str| {
            let text = TEMPLATE
                .replace("z9hG4bKabc", &format!("z9hG4bK{branch}"))
                .replace("Route: <sip:127.0.0.1:5064;lr;received=sip:203.0.113.5:40000%3Btransport%3Dudp>\r\n", "");
            let message = receive(Bytes::from(text), phone().remote).unwrap();
            match forwarder().handle(message, &phone()) {
                Action::Forward { message, .. } => {
                    let message = Message::parse(message).unwrap();
                    message.top_via().unwrap().branch().unwrap().to_vec()
                }
                other => panic!("not forwarded: {other:?}"),
            }
        };
        prop_assert_eq!(branch_of(&first), branch_of(&first));
        if first != second {
            prop_assert_ne!(branch_of(&first), branch_of(&second));
        }
    }
}
