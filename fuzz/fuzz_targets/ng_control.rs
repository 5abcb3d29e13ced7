//! Oracles for the rtpengine ng control path: bencode decode → encode → decode is a fixed
//! point (dictionary keys come out sorted), command parsing never panics on any datagram, and
//! a rewritten SDP still parses with every live stream pointing at the relay (streams on
//! hold keep their 0.0.0.0 address).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ng_protocol::{RewriteOptions, bencode, sdp};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ng_protocol::split_message(data) {
        // Any outcome is fine as long as it is a value or a typed error.
        let _ = ng_protocol::parse_request(message.payload);
    }

    if let Ok(value) = bencode::decode(data) {
        let encoded = value.encode();
        let again = bencode::decode(&encoded).expect("encoder output decodes");
        assert_eq!(again.encode(), encoded, "bencode encoding is not a fixed point");
    }

    if let Ok(offer) = sdp::parse(data) {
        let options = RewriteOptions {
            relay_address: "192.0.2.1".parse().unwrap(),
            media_ports: (0..offer.media.len()).map(|i| 30000 + 2 * i as u16).collect(),
            replace_origin: true,
            remove_ice: true,
        };
        if let Ok(rewritten) = sdp::rewrite(data, &options) {
            let parsed = sdp::parse(&rewritten).expect("a rewritten SDP parses");
            assert_eq!(parsed.media.len(), offer.media.len());
            for (index, (before, after)) in offer.media.iter().zip(&parsed.media).enumerate() {
                if before.port != 0 {
                    assert_eq!(after.port, options.media_ports[index]);
                    // A 0.0.0.0 (hold) connection stays as it is, as rtpengine keeps it; a
                    // stream without any c= (invalid SDP) gets none added.
                    if before.connection.is_some_and(|address| !address.is_unspecified()) {
                        assert_eq!(after.connection, Some(options.relay_address));
                    }
                }
            }
        }
    }
});
