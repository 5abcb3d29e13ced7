//! Oracle: a parsed URI keeps its wire form, is equivalent to itself, and re-parsing its raw
//! bytes gives an equivalent URI (RFC 3261 §19.1.4 comparison is reflexive and stable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = Uri::parse(data) else {
        return;
    };
    assert_eq!(uri.raw, data, "the URI must keep its bytes as on the wire");
    assert!(uri.equivalent(&uri), "comparison must be reflexive");
    let again = Uri::parse(uri.raw).expect("raw bytes of a parsed URI parse again");
    assert!(uri.equivalent(&again) && again.equivalent(&uri));
    assert_eq!(uri.port, again.port);
});
