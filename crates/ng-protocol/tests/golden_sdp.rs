//! Golden SDP tests: each `tests/golden/<case>.in.sdp` rewritten with the case's options must
//! give `tests/golden/<case>.out.sdp` byte for byte.

use std::path::Path;

use ng_protocol::sdp::{RewriteOptions, rewrite};

fn check(case: &str, options: &RewriteOptions) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let input = std::fs::read(dir.join(format!("{case}.in.sdp"))).unwrap();
    let expected = std::fs::read_to_string(dir.join(format!("{case}.out.sdp"))).unwrap();
    let output = String::from_utf8(rewrite(&input, options).unwrap()).unwrap();
    assert_eq!(output, expected, "golden case {case}");
}

fn relay_options(ports: &[u16], replace_origin: bool, remove_ice: bool) -> RewriteOptions {
    RewriteOptions {
        relay_address: "203.0.113.1".parse().unwrap(),
        media_ports: ports.to_vec(),
        replace_origin,
        remove_ice,
    }
}

/// The ng-protocol.md §4 offer: ICE stripped, origin replaced, order kept, `a=rtcp` added
/// (Debian's rtpengine 10.5 gives the same lines, plus `a=rtpmap` for static types and the
/// direction moved into the media section).
#[test]
fn ice_remove_replace_origin() {
    check(
        "ice_remove_replace_origin",
        &relay_options(&[30000], true, true),
    );
}

/// LF-only line ends, no s= line, trailing blanks: accepted, written back with CRLF, and a
/// direction attribute and `a=rtcp` added because the offer had neither. (rtpengine 10.5 mixes
/// LF and CRLF lines here.)
#[test]
fn lf_only_no_session_name() {
    check(
        "lf_only_no_session_name",
        &relay_options(&[30010], false, false),
    );
}

/// Three m= sections: a=rtcp with an address follows the relay, a rejected video keeps port 0
/// but its c= hides the party's address (as rtpengine does), a held stream keeps c=0.0.0.0 but
/// moves to the relay port; `/2` port counts go.
#[test]
fn multi_media_rtcp_hold() {
    check(
        "multi_media_rtcp_hold",
        &relay_options(&[30020, 30022, 30024], true, false),
    );
}
