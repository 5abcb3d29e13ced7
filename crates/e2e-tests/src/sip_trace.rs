//! Reading SIP messages out of a phone's log or trace, whatever the phone (pjsip, linphone,
//! baresip and SIPp all print messages as they went over the wire, one header per line).

/// The `algorithm` of every digest challenge or answer in `trace`: for each line of the
/// header `header` (`WWW-Authenticate`, `Authorization`, `Proxy-Authenticate`, …; name
/// matched without case), the value of its `algorithm` parameter, or `MD5` when it has none
/// (RFC 7616 §3.3: absent means MD5). In the order they appear.
pub fn digest_algorithms(trace: &str, header: &str) -> Vec<String> {
    let prefix = format!("{}:", header.to_ascii_lowercase());
    trace
        .lines()
        .map(str::trim)
        .filter(|line| line.to_ascii_lowercase().starts_with(&prefix))
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            match lower.find("algorithm=") {
                Some(at) => line[at + "algorithm=".len()..]
                    .split([',', ' ', '\r'])
                    .next()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned(),
                None => "MD5".to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_of_challenges_and_answers() {
        let trace = "SIP/2.0 401 Unauthorized\r\n\
            WWW-Authenticate: Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"\r\n\
            www-authenticate: Digest realm=\"x\", nonce=\"m\", algorithm=\"MD5\"\r\n\
            WWW-Authenticate: Digest realm=\"x\", nonce=\"o\"\r\n\
            Authorization:  Digest realm=\"x\", algorithm=SHA-256, username=\"a\"\r\n\
            Proxy-Authenticate: Digest realm=\"x\", algorithm=MD5\r\n";
        assert_eq!(
            digest_algorithms(trace, "WWW-Authenticate"),
            vec!["SHA-256", "MD5", "MD5"]
        );
        assert_eq!(digest_algorithms(trace, "Authorization"), vec!["SHA-256"]);
        assert_eq!(digest_algorithms(trace, "proxy-authenticate"), vec!["MD5"]);
        assert!(digest_algorithms(trace, "Proxy-Authorization").is_empty());
    }
}
