//! Property tests for RFC 3261 §19.1.4 URI comparison.

use proptest::prelude::*;
use sip_message::Uri;

/// Percent-encodes the bytes selected by `mask` (an unreserved character and its escape
/// are equivalent, RFC 3261 §19.1.4).
fn escape_some(text: &str, mask: &[bool]) -> String {
    text.bytes()
        .enumerate()
        .map(|(index, byte)| {
            if mask[index % mask.len()] {
                format!("%{byte:02X}")
            } else {
                (byte as char).to_string()
            }
        })
        .collect()
}

/// Flips the case of ASCII letters selected by `mask`.
fn recase(text: &str, mask: &[bool]) -> String {
    text.chars()
        .enumerate()
        .map(|(index, c)| {
            if mask[index % mask.len()] {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn escaping_and_host_case_do_not_matter(
        user in "[a-z0-9._~-]{1,12}",
        host in "[a-z][a-z0-9]{0,8}\\.example\\.(com|net)",
        param_value in "[a-z0-9]{1,8}",
        mask in proptest::collection::vec(any::<bool>(), 1..8),
        port in proptest::option::of(1u16..),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let plain = format!("sip:{user}@{host}{port};transport=tcp;x={param_value}");
        let escaped = format!(
            "sip:{}@{}{port};TRANSPORT=TCP;x={}",
            escape_some(&user, &mask),
            recase(&host, &mask),
            escape_some(&param_value, &mask)
        );
        let a = Uri::parse(plain.as_bytes()).unwrap();
        let b = Uri::parse(escaped.as_bytes()).unwrap();
        prop_assert!(a.equivalent(&b), "{} vs {}", plain, escaped);
        prop_assert!(b.equivalent(&a));
        // Raw parts stay as received.
        let escaped_user = escape_some(&user, &mask);
        prop_assert_eq!(b.user.unwrap(), escaped_user.as_bytes());
    }

    #[test]
    fn user_case_port_and_significant_params_do_matter(
        user in "[a-z]{1,12}",
        host in "[a-z]{1,8}\\.example\\.com",
        port in 1u16..,
        significant in prop_oneof![Just("transport=udp"), Just("user=phone"), Just("ttl=1"), Just("method=INVITE"), Just("maddr=192.0.2.1")],
    ) {
        let base_text = format!("sip:{user}@{host}");
        let base = Uri::parse(base_text.as_bytes()).unwrap();
        let upper = format!("sip:{}@{host}", user.to_ascii_uppercase());
        let with_port = format!("sip:{user}@{host}:{port}");
        let with_param = format!("sip:{user}@{host};{significant}");
        let with_other_param = format!("sip:{user}@{host};unknown-param=1");
        prop_assert!(!base.equivalent(&Uri::parse(upper.as_bytes()).unwrap()));
        prop_assert!(!base.equivalent(&Uri::parse(with_port.as_bytes()).unwrap()));
        prop_assert!(!base.equivalent(&Uri::parse(with_param.as_bytes()).unwrap()));
        prop_assert!(base.equivalent(&Uri::parse(with_other_param.as_bytes()).unwrap()));
        let sips = format!("sips:{user}@{host}");
        prop_assert!(!base.equivalent(&Uri::parse(sips.as_bytes()).unwrap()));
    }

    /// Any input either parses (and then equals itself) or is a typed error.
    #[test]
    fn arbitrary_uris_parse_or_fail_cleanly(text in "(sip|sips|tel|x)?:?[ -~]{0,40}") {
        if let Ok(uri) = Uri::parse(text.as_bytes()) {
            prop_assert!(uri.equivalent(&uri));
            prop_assert_eq!(uri.raw, text.as_bytes());
        }
    }
}

/// Found by the `uri` fuzz target: a parameter given twice with different values made a URI
/// differ from itself. The first value counts on both sides.
#[test]
fn duplicate_parameters_keep_comparison_reflexive() {
    for text in [
        "sip:biloxi.com;transport=tcp;method=REGI=tcp;method=REGISTER?oxi.com",
        "tel:+1-555;phone-context=a;phone-context=b",
    ] {
        let uri = Uri::parse(text.as_bytes()).unwrap();
        assert!(uri.equivalent(&uri), "{text}");
    }
    let first = Uri::parse(b"sip:a@b;method=INVITE;method=BYE").unwrap();
    let plain = Uri::parse(b"sip:a@b;method=INVITE").unwrap();
    let other = Uri::parse(b"sip:a@b;method=BYE").unwrap();
    assert!(first.equivalent(&plain) && plain.equivalent(&first));
    assert!(!first.equivalent(&other) && !other.equivalent(&first));
}

#[test]
fn a_host_names_its_domain_in_one_spelling() {
    let domain = |uri: &str| {
        sip_message::Uri::parse(uri.as_bytes())
            .unwrap()
            .host
            .domain_name()
            .unwrap()
    };
    assert_eq!(domain("sip:bob@Example.ORG"), "example.org");
    assert_eq!(domain("sip:bob@192.0.2.1:5070"), "192.0.2.1");
    assert_eq!(domain("sip:bob@[2001:DB8:0::10]"), "[2001:db8::10]");
    assert_eq!(domain("sip:[2001:db8::10]:5070"), "[2001:db8::10]");
}
