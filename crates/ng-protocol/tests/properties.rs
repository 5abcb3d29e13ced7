//! Property tests: bencode round trip, no panic on arbitrary input (decoder, command parser,
//! SDP code), and the SDP rewriter keeping order while pointing every live stream at the relay.

use std::borrow::Cow;

use ng_protocol::bencode::{Value, decode};
use ng_protocol::sdp::{RewriteOptions, parse, rewrite};
use ng_protocol::{parse_request, split_message};
use proptest::prelude::*;

/// Values whose dictionaries have unique keys, so encode (which sorts) then decode gives the
/// same set of entries.
fn value_strategy() -> impl Strategy<Value = Value<'static>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Value::Bytes(Cow::Owned(b))),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..6
            )
            .prop_map(|map| Value::Dict(
                map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn bencode_round_trips(value in value_strategy()) {
        let encoded = value.encode();
        let decoded = decode(&encoded).unwrap();
        // BTreeMap keys come out sorted, which is what the encoder writes.
        prop_assert_eq!(decoded.into_owned(), value);
    }

    #[test]
    fn reencoding_is_stable(value in value_strategy()) {
        let encoded = value.encode();
        prop_assert_eq!(decode(&encoded).unwrap().encode(), encoded);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let _ = split_message(&bytes).map(|m| parse_request(m.payload));
    }

    #[test]
    fn decoder_never_panics_on_bencode_like_bytes(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'd'), Just(b'l'), Just(b'i'), Just(b'e'), Just(b':'), Just(b'-'), (b'0'..=b'9')],
            0..128,
        )
    ) {
        let _ = decode(&bytes);
        let _ = parse_request(&bytes);
    }

    #[test]
    fn sdp_code_never_panics(
        lines in proptest::collection::vec("[a-z]=[ -~]{0,40}", 0..12),
        ports in proptest::collection::vec(any::<u16>(), 0..4),
    ) {
        let mut text = String::from("v=0\r\n");
        for line in &lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        let _ = parse(text.as_bytes());
        let options = RewriteOptions {
            relay_address: "127.0.0.1".parse().unwrap(),
            media_ports: ports,
            replace_origin: true,
            remove_ice: true,
        };
        if let Ok(out) = rewrite(text.as_bytes(), &options) {
            // What the rewriter writes must itself parse.
            prop_assert!(parse(&out).is_ok());
        }
    }
}

/// One generated media section: port (0 = rejected), whether it has its own c=, and attribute
/// lines (a mix of ordinary, ICE and direction attributes).
fn media_strategy() -> impl Strategy<Value = (u16, bool, Vec<String>)> {
    let attribute = prop_oneof![
        "rtpmap:[0-9]{1,3} [A-Z]{3,5}/8000",
        "fmtp:101 0-1[0-6]",
        "ptime:[1-4]0",
        Just("sendonly".to_owned()),
        Just("recvonly".to_owned()),
        "ice-ufrag:[a-zA-Z0-9]{4,8}",
        "candidate:1 1 UDP [0-9]{5} 10.0.0.[0-9] [0-9]{4} typ host",
        "x-custom:[a-z ]{0,10}",
    ];
    (
        prop_oneof![Just(0_u16), 1024_u16..60000],
        any::<bool>(),
        proptest::collection::vec(attribute, 0..6),
    )
}

proptest! {
    #[test]
    fn rewrite_keeps_order_and_points_every_live_stream_at_the_relay(
        media in proptest::collection::vec(media_strategy(), 1..5),
        remove_ice in any::<bool>(),
    ) {
        let mut sdp = String::from("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n");
        for (port, own_connection, attributes) in &media {
            sdp.push_str(&format!("m=audio {port} RTP/AVP 0 101\r\n"));
            if *own_connection {
                sdp.push_str("c=IN IP4 10.0.0.2\r\n");
            }
            for attribute in attributes {
                sdp.push_str(&format!("a={attribute}\r\n"));
            }
        }
        let relay_ports: Vec<u16> = (0..media.len()).map(|i| 30_000 + 2 * i as u16).collect();
        let options = RewriteOptions {
            relay_address: "203.0.113.1".parse().unwrap(),
            media_ports: relay_ports.clone(),
            replace_origin: false,
            remove_ice,
        };
        let out = String::from_utf8(rewrite(sdp.as_bytes(), &options).unwrap()).unwrap();
        let parsed = parse(out.as_bytes()).unwrap();
        prop_assert_eq!(parsed.media.len(), media.len());
        for (index, ((port, _, _), described)) in media.iter().zip(&parsed.media).enumerate() {
            let expected = if *port == 0 { 0 } else { relay_ports[index] };
            prop_assert_eq!(described.port, expected);
            prop_assert_eq!(described.connection, Some("203.0.113.1".parse().unwrap()));
            if *port != 0 {
                prop_assert_eq!(described.rtcp_port, Some(expected + 1));
            }
        }
        // Every attribute the rewriter does not own comes out unchanged and in the same order.
        let kept = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.trim_end().to_owned())
                .filter(|l| l.starts_with("a=") && !l.starts_with("a=rtcp")
                    && !l.starts_with("a=sendrecv")
                    && !(remove_ice && (l.starts_with("a=ice-") || l.starts_with("a=candidate"))))
                .collect()
        };
        prop_assert_eq!(kept(&out), kept(&sdp));
        if remove_ice {
            prop_assert!(!out.contains("a=ice-") && !out.contains("a=candidate"));
        }
    }
}
