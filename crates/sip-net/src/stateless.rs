//! Stateless error responses built from raw bytes (RFC 3261 §8.2.6.2, §18.3).
//!
//! Bytes the parser refused have no `Message` to build a response from, yet RFC 3261 §18.3 and
//! RFC 4475 want a 400 for a broken request when the peer can be told. This module copies the
//! headers a response must echo straight from the raw header section; it is the only place in
//! the crate that looks inside a message without `sip-message`.

use bytes::{BufMut, Bytes, BytesMut};

/// Length of the header section including its terminating empty line, if it is complete.
fn header_section_length(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|position| position + 4)
}

/// Header lines after the start line, with folded continuation lines joined to their header.
/// Yields `(name, value)` with the value still holding folding whitespace.
fn header_fields(header_section: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut lines = header_section
        .split(|byte| *byte == b'\n')
        .skip(1)
        .peekable();
    std::iter::from_fn(move || {
        loop {
            let line = trim_carriage_return(lines.next()?);
            if line.is_empty() || line[0] == b' ' || line[0] == b'\t' {
                continue;
            }
            let colon = line.iter().position(|byte| *byte == b':')?;
            let name = trim_whitespace(&line[..colon]);
            // Continuation lines (RFC 3261 §7.3.1) only matter for the value's end, and the
            // values this module reads never fold in practice; skip them.
            while lines
                .peek()
                .is_some_and(|next| next.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
            {
                lines.next();
            }
            return Some((name, &line[colon + 1..]));
        }
    })
}

/// Builds a stateless error response to a request, copying the headers RFC 3261 §8.2.6.2 says a
/// response must echo (Via, From, To, Call-ID, CSeq), byte for byte.
///
/// Works on raw bytes because it answers messages the full parser refused. Returns `None` for
/// responses (never answered, RFC 3261 §18.1.2), for start lines that are not a request line
/// ending in a SIP-Version (any version: a `SIP/7.0` request gets its 505) and for requests
/// without a Via, which cannot be routed back. A request missing From, To, Call-ID or CSeq
/// still gets its answer (RFC 4475 §3.3.1 "insuf": ideally 400) with whichever of them it had.
pub fn stateless_error_response(
    message: &[u8],
    status_code: u16,
    reason_phrase: &str,
) -> Option<Bytes> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored, as the parser ignores them.
    let leading = message
        .iter()
        .take_while(|byte| matches!(byte, b'\r' | b'\n'))
        .count();
    let message = &message[leading..];
    let header_section = match header_section_length(message) {
        Some(length) => &message[..length],
        None => message,
    };
    let start_line_end = header_section.iter().position(|byte| *byte == b'\n')?;
    let start_line = trim_carriage_return(&header_section[..start_line_end]);
    if !is_request_line(start_line) {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for (name, value) in header_fields(header_section) {
        let value = trim_whitespace(value);
        let is = |full: &[u8], compact: &[u8]| {
            name.eq_ignore_ascii_case(full) || name.eq_ignore_ascii_case(compact)
        };
        if is(b"via", b"v") {
            vias.push(value);
        } else if is(b"from", b"f") {
            from.get_or_insert(value);
        } else if is(b"to", b"t") {
            to.get_or_insert(value);
        } else if is(b"call-id", b"i") {
            call_id.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"cseq") {
            cseq.get_or_insert(value);
        }
    }
    if vias.is_empty() {
        return None;
    }
    let mut response = BytesMut::with_capacity(256 + header_section.len());
    response.put_slice(format!("SIP/2.0 {status_code} {reason_phrase}\r\n").as_bytes());
    for via in vias {
        put_header(&mut response, b"Via", via);
    }
    if let Some(from) = from {
        put_header(&mut response, b"From", from);
    }
    if let Some(to) = to {
        put_header(&mut response, b"To", to);
        if !contains_tag_parameter(to) {
            // RFC 3261 §8.2.6.2: the server adds a To tag. Derive it from the request so a
            // retransmission gets the same tag without the transport keeping state.
            let tag = stable_tag(&[
                from.unwrap_or_default(),
                call_id.unwrap_or_default(),
                cseq.unwrap_or_default(),
            ]);
            response.truncate(response.len() - 2);
            response.put_slice(format!(";tag={tag:016x}\r\n").as_bytes());
        }
    }
    if let Some(call_id) = call_id {
        put_header(&mut response, b"Call-ID", call_id);
    }
    if let Some(cseq) = cseq {
        put_header(&mut response, b"CSeq", cseq);
    }
    response.put_slice(b"Content-Length: 0\r\n\r\n");
    Some(response.freeze())
}

/// Whether `line` reads as a request line, however broken its middle: it does not start like a
/// status line (`SIP/`, RFC 3261 §7.2) and its last word is a SIP-Version of any number
/// (`SIP/` 1*DIGIT "." 1*DIGIT, case-insensitive as the parser reads it), so a request in
/// another version is answered with the parser's 505 (§8.2.2, RFC 4475 §3.1.2.16 "badvers").
/// Trailing white space after the version (RFC 4475 §3.1.2.10 "trws") still reads as a request:
/// the parser rejects it and the sender is owed its 400. Anything else (HTTP, binary noise, a
/// line without a version) is not SIP and gets no answer.
fn is_request_line(line: &[u8]) -> bool {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let line = trim_whitespace(line);
    let Some(last_space) = line
        .iter()
        .rposition(|byte| *byte == b' ' || *byte == b'\t')
    else {
        return false;
    };
    let version = &line[last_space + 1..];
    if version.len() < 4 || !version[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let mut numbers = version[4..].split(|byte| *byte == b'.');
    let is_number = |part: Option<&[u8]>| {
        part.is_some_and(|part| !part.is_empty() && part.iter().all(u8::is_ascii_digit))
    };
    is_number(numbers.next()) && is_number(numbers.next()) && numbers.next().is_none()
}

fn put_header(response: &mut BytesMut, name: &[u8], value: &[u8]) {
    response.put_slice(name);
    response.put_slice(b": ");
    response.put_slice(value);
    response.put_slice(b"\r\n");
}

fn contains_tag_parameter(name_address: &[u8]) -> bool {
    // The tag is a header parameter, so it follows the closing '>' when there is one.
    let parameters = match name_address.iter().rposition(|byte| *byte == b'>') {
        Some(end) => &name_address[end..],
        None => name_address,
    };
    parameters
        .split(|byte| *byte == b';')
        .skip(1)
        .any(|parameter| {
            let name = parameter
                .split(|byte| *byte == b'=')
                .next()
                .unwrap_or_default();
            trim_whitespace(name).eq_ignore_ascii_case(b"tag")
        })
}

/// FNV-1a over the parts: stable across runs, so equal requests get equal tags.
fn stable_tag(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(b"\0") {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn trim_carriage_return(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !byte.is_ascii_whitespace())
        .map_or(start, |position| position + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP relay.example.com;branch=z9hG4bK1\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Content-Length: 4\r\n\
\r\n\
body";

    #[test]
    fn stateless_response_echoes_the_request_headers() {
        let response = stateless_error_response(OPTIONS, 400, "Bad Request").unwrap();
        let text = std::str::from_utf8(&response).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(text.contains(
            "Via: SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP relay.example.com;branch=z9hG4bK1\r\n"
        ));
        assert!(text.contains("From: Alice <sip:alice@example.com>;tag=1928301774\r\n"));
        assert!(text.contains("To: <sip:bob@example.com>;tag="));
        assert!(text.contains("Call-ID: a84b4c76e66710\r\n"));
        assert!(text.contains("CSeq: 63104 OPTIONS\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        // Same request, same tag: retransmissions get identical answers.
        assert_eq!(
            stateless_error_response(OPTIONS, 400, "Bad Request").unwrap(),
            response
        );
    }

    #[test]
    fn stateless_response_keeps_an_existing_to_tag() {
        let request = b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\
f: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: id\r\nCSeq: 2 BYE\r\n\r\n";
        let response = stateless_error_response(request, 400, "Bad Request").unwrap();
        let text = std::str::from_utf8(&response).unwrap();
        assert!(text.contains("To: <sip:c@d>;tag=2\r\n"), "{text}");
        assert_eq!(text.matches("tag=").count(), 2);
    }

    #[test]
    fn request_missing_from_and_call_id_still_gets_its_400() {
        // RFC 4475 §3.3.1 (insuf): a request without Call-ID, From or To should get a 400;
        // the Via is all a response needs to find its way back.
        let request = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\
To: <sip:c@d>\r\nCSeq: 1 INVITE\r\n\r\n";
        let response =
            stateless_error_response(request, 400, "Bad Request - missing From").unwrap();
        let text = std::str::from_utf8(&response).unwrap();
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request - missing From\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"),
            "{text}"
        );
        assert!(text.contains("To: <sip:c@d>;tag="), "{text}");
        assert!(text.contains("CSeq: 1 INVITE\r\n"), "{text}");
        assert!(
            !text.contains("From:") && !text.contains("Call-ID:"),
            "{text}"
        );
    }

    #[test]
    fn responses_and_unroutable_requests_get_no_answer() {
        let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: id\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(stateless_error_response(response, 400, "Bad Request"), None);
        let no_via = b"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>\r\nCall-ID: id\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(stateless_error_response(no_via, 400, "Bad Request"), None);
        assert_eq!(
            stateless_error_response(&[b'x'; 5000], 400, "Bad Request"),
            None
        );
        assert_eq!(stateless_error_response(b"", 400, "Bad Request"), None);
    }

    /// An RFC 4475 message from the repository's torture corpus.
    fn torture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../sip-message/tests/torture/{name}.sip",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    /// What a transport sends back for `message`: the parser's verdict turned into a response.
    fn answer_to(message: &[u8]) -> Option<String> {
        let error = sip_message::Message::parse(Bytes::copy_from_slice(message))
            .and_then(|message| message.validate().map(|()| message))
            .expect_err("the message is refused");
        stateless_error_response(message, error.status_code(), &error.reason_phrase())
            .map(|response| String::from_utf8(response.to_vec()).unwrap())
    }

    #[test]
    fn request_in_another_sip_version_gets_505_rfc_4475_badvers() {
        let text = answer_to(&torture("badvers")).expect("badvers is answered");
        assert!(
            text.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
            "{text}"
        );
        // The Via is echoed as sent, version and all: the response retraces it.
        assert!(
            text.contains("Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"),
            "{text}"
        );
        assert!(text.contains("From: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\n"));
        assert!(text.contains("To: T. Watson <sip:t.watson@example.org>;tag="));
        assert!(text.contains("Call-ID: badvers.31417@c.example.com\r\n"));
        assert!(text.contains("CSeq: 1 OPTIONS\r\n"));
    }

    #[test]
    fn request_line_with_trailing_white_space_gets_400_rfc_4475_trws() {
        let text = answer_to(&torture("trws")).expect("trws is answered");
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request - malformed start line\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Call-ID: trws.oicu34958239neffasdhr2345r\r\n"),
            "{text}"
        );
    }

    #[test]
    fn any_sip_version_in_any_case_marks_a_request() {
        let headers = "Via: SIP/2.0/UDP h;branch=z9hG4bKv\r\nCall-ID: v\r\n\r\n";
        for line in [
            "OPTIONS sip:a@b SIP/2.0",
            "OPTIONS sip:a@b sip/2.0",
            "OPTIONS sip:a@b SIP/7.0",
            "OPTIONS sip:a@b SIP/2.1",
            "OPTIONS sip:a@b SIP/10.25",
            "OPTIONS sip:a@b SIP/2.0 \t ",
            "INVITE  sip:a@b  SIP/2.0",
            "INVITE sip:a@b\tSIP/3.0",
        ] {
            let request = format!("{line}\r\n{headers}");
            let response = stateless_error_response(request.as_bytes(), 400, "Bad Request");
            assert!(response.is_some(), "{line:?} is a request");
        }
        // Leading CRLFs (RFC 3261 §7.5) do not hide the request line.
        let request = format!("\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\n{headers}");
        assert!(stateless_error_response(request.as_bytes(), 400, "Bad Request").is_some());
    }

    #[test]
    fn lines_without_a_sip_version_or_starting_like_a_status_line_get_no_answer() {
        let headers = "Via: SIP/2.0/UDP h;branch=z9hG4bKv\r\nCall-ID: v\r\n\r\n";
        for line in [
            "SIP/2.0 200 OK",
            "SIP/7.0 200 OK",
            "sip/2.0 4294967301 better not break the receiver SIP/2.0",
            "SIP/2.0 100 ",
            "GET / HTTP/1.1",
            "OPTIONS sip:a@b",
            "OPTIONS sip:a@b SIP/2",
            "OPTIONS sip:a@b SIP/.0",
            "OPTIONS sip:a@b SIP/2.",
            "OPTIONS sip:a@b SIP/2.0.1",
            "OPTIONS sip:a@b SIP/x.y",
            "OPTIONS sip:a@b SIP/2.0x",
            "SIP/2.0",
            " SIP/2.0",
            "",
        ] {
            let request = format!("{line}\r\n{headers}");
            let response = stateless_error_response(request.as_bytes(), 400, "Bad Request");
            assert_eq!(response, None, "{line:?} is no request");
        }
        for response in ["scalarlg", "bigcode", "noreason", "unreason", "bcast"] {
            assert_eq!(
                stateless_error_response(&torture(response), 400, "Bad Request"),
                None,
                "{response} is a response"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary bytes never panic; whatever comes back is a response echoing a Via.
            #[test]
            fn arbitrary_bytes_give_nothing_or_a_response(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
                if let Some(response) = stateless_error_response(&bytes, 400, "Bad Request") {
                    prop_assert!(response.starts_with(b"SIP/2.0 400 Bad Request\r\nVia: "));
                    prop_assert!(response.ends_with(b"\r\nContent-Length: 0\r\n\r\n"));
                }
            }

            /// Any request line with the five headers in any case or compact form gets an answer.
            #[test]
            fn compact_and_long_forms_are_both_read(compact in proptest::collection::vec(any::<bool>(), 4), method in "[A-Z]{1,10}") {
                let names = [("Via", "v"), ("From", "f"), ("To", "t"), ("Call-ID", "i")];
                let mut request = format!("{method} sip:x@y SIP/2.0\r\n");
                for ((long, short), use_short) in names.iter().zip(&compact) {
                    let name = if *use_short { short } else { long };
                    request.push_str(&format!("{name}: value-of-{long}\r\n"));
                }
                request.push_str(&format!("CSeq: 1 {method}\r\n\r\n"));
                let response = stateless_error_response(request.as_bytes(), 400, "Bad Request");
                prop_assert!(response.is_some());
            }

            /// A request in any SIP-Version gets the status it is refused with; the same
            /// message as a status line gets nothing.
            #[test]
            fn every_version_number_is_answered_and_no_status_line_is(major in 0u32..100_000, minor in 0u32..100_000, status in 100u16..700) {
                let headers = "Via: SIP/2.0/UDP h;branch=z9hG4bKp\r\nCSeq: 1 OPTIONS\r\n\r\n";
                let request = format!("OPTIONS sip:x@y SIP/{major}.{minor}\r\n{headers}");
                let response = stateless_error_response(request.as_bytes(), 505, "Version Not Supported");
                prop_assert!(response.is_some_and(|response| response.starts_with(b"SIP/2.0 505 Version Not Supported\r\n")));
                let status_line = format!("SIP/{major}.{minor} {status} Whatever SIP/2.0\r\n{headers}");
                prop_assert_eq!(stateless_error_response(status_line.as_bytes(), 400, "Bad Request"), None);
            }
        }
    }
}
