//! Oracles for the rtpengine ng control path: bencode decode → encode → decode is a fixed
//! point (dictionary keys come out sorted), command parsing never panics on any datagram, a
//! parsed command encodes (client side) to a request that parses back to it, a reply read by
//! the client is a fixed point of encode → decode after one round, and a rewritten SDP still
//! parses with every live stream pointing at the relay (streams on hold keep their 0.0.0.0
//! address).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ng_protocol::{NgCommand, Reply, RewriteOptions, bencode, sdp};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ng_protocol::split_message(data) {
        // Any outcome is fine as long as it is a value or a typed error; a command the relay
        // parsed, a client encodes back to what parses to it.
        if let Ok(command) = ng_protocol::parse_request(message.payload) {
            let encoded = command.to_value().encode();
            let again = ng_protocol::parse_request(&encoded).expect("an encoded command parses");
            // Parsing normalises (flags, key spellings): from then on it is exact.
            assert_eq!(
                ng_protocol::parse_request(&again.to_value().encode()).as_ref(),
                Ok(&again),
                "command encoding is not the inverse of parsing"
            );
        }
        let commands = [
            NgCommand::Ping,
            NgCommand::Statistics,
            NgCommand::List { limit: 1 },
            ng_protocol::parse_request(b"d7:command5:query7:call-id1:ce").expect("a query"),
            ng_protocol::parse_request(b"d7:command6:delete7:call-id1:ce").expect("a delete"),
            ng_protocol::parse_request(b"d7:command5:offer7:call-id1:c8:from-tag1:f3:sdp3:v=0e")
                .expect("an offer"),
        ];
        for command in &commands {
            if let Ok(reply) = Reply::decode(message.payload, command) {
                let round = |reply: &Reply| Reply::decode(&reply.to_value().encode(), command);
                let second = round(&reply).expect("an encoded reply decodes");
                assert_eq!(round(&second), Ok(second), "reply decoding is not a fixed point");
            }
        }
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
