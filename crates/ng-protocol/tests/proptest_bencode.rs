//! Property tests: bencode round trip and no panic on arbitrary input, for the decoder, the
//! command parser and the SDP code.

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
