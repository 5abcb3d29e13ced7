//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), kept as received and compared
//! by the rules of RFC 3261 §19.1.4.

use crate::ParseError;
use crate::params::Params;
use std::net::IpAddr;

/// The URI scheme. Scheme names are case-insensitive (RFC 3261 §19.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    /// Any other scheme (`http`, `isbn`, `soap.beep`, …), as received.
    Other(&'a [u8]),
}

/// The host part of a SIP URI or Via sent-by, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name (or, for tel and other schemes, empty).
    Domain(&'a [u8]),
    /// A dotted IPv4 address.
    Ipv4(&'a [u8]),
    /// An IPv6 reference, without the brackets. The text is kept even where `std` would not
    /// parse it (RFC 5118 §4.10 asks to tolerate `2001:db8:::192.0.2.1`).
    Ipv6(&'a [u8]),
}

impl<'a> Host<'a> {
    /// The host text (IPv6 without brackets).
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Host::Domain(bytes) | Host::Ipv4(bytes) | Host::Ipv6(bytes) => bytes,
        }
    }

    /// The address, when the host is an IP literal that `std` can read.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::Ipv4(bytes) | Host::Ipv6(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        }
    }

    /// The host as a SIP domain is named: a host name in lower case, an IPv4 address as
    /// written, an IPv6 reference in brackets in its canonical (RFC 5952) spelling, so every
    /// spelling of one address names one domain. `None` when the text is not UTF-8.
    pub fn domain_name(&self) -> Option<String> {
        let text = std::str::from_utf8(self.as_bytes()).ok()?;
        Some(match self {
            Host::Domain(_) => text.to_ascii_lowercase(),
            Host::Ipv4(_) => text.to_owned(),
            Host::Ipv6(_) => match self.ip() {
                Some(ip) => format!("[{ip}]"),
                None => format!("[{}]", text.to_ascii_lowercase()),
            },
        })
    }

    /// Hosts compare case-insensitively (RFC 3261 §19.1.4); IPv6 references compare as
    /// addresses, so `[2001:db8:0::1]` equals `[2001:DB8::1]` (RFC 5118 §4.3 notes the
    /// many spellings of one address).
    pub fn equivalent(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Ipv6(_), Host::Ipv6(_)) => match (self.ip(), other.ip()) {
                (Some(a), Some(b)) => a == b,
                _ => self.as_bytes().eq_ignore_ascii_case(other.as_bytes()),
            },
            _ => {
                std::mem::discriminant(self) == std::mem::discriminant(other)
                    && self.as_bytes().eq_ignore_ascii_case(other.as_bytes())
            }
        }
    }
}

/// A parsed URI borrowing the bytes it was read from. Every part is raw: escapes stay
/// escaped; [`Uri::equivalent`] decodes them only to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The whole URI as received.
    pub raw: &'a [u8],
    pub scheme: Scheme<'a>,
    /// SIP/SIPS: the user part. tel: the telephone number. Other schemes: `None`.
    pub user: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    /// SIP/SIPS: the host. Other schemes: an empty domain.
    pub host: Host<'a>,
    pub port: Option<u16>,
    /// `uri-parameters` (SIP/SIPS) or tel parameters.
    pub params: Params<'a>,
    /// The `headers` component after `?`, raw.
    pub headers: Option<&'a [u8]>,
    /// Everything after `scheme:`; for other schemes the only content.
    pub opaque: &'a [u8],
}

fn invalid(reason: &'static str) -> ParseError {
    ParseError::InvalidUri { reason }
}

/// `unreserved` (RFC 3261 §25.1): alphanum / mark.
fn is_user_byte(byte: u8) -> bool {
    URI_CLASSES[usize::from(byte)] & USER != 0
}

fn is_password_byte(byte: u8) -> bool {
    URI_CLASSES[usize::from(byte)] & PASSWORD != 0
}

fn is_param_byte(byte: u8) -> bool {
    URI_CLASSES[usize::from(byte)] & PARAM != 0
}

fn is_header_byte(byte: u8) -> bool {
    URI_CLASSES[usize::from(byte)] & HEADER != 0
}

const UNRESERVED: u8 = 1;
const USER: u8 = 2;
const PASSWORD: u8 = 4;
const PARAM: u8 = 8;
const HEADER: u8 = 16;
/// hostname characters (alphanum, `-`, `.`, and `_` seen in the wild).
const HOST: u8 = 32;
const DIGIT_OR_DOT: u8 = 64;

/// Character classes of RFC 3261 §25.1 as bit sets, one load per byte checked:
/// `unreserved` (alphanum / mark), `user` (unreserved / escaped / user-unreserved),
/// `password`, `paramchar` and `hname`/`hvalue` characters.
static URI_CLASSES: [u8; 256] = {
    const fn has(set: &[u8], byte: u8) -> bool {
        let mut index = 0;
        while index < set.len() {
            if set[index] == byte {
                return true;
            }
            index += 1;
        }
        false
    }
    let mut table = [0u8; 256];
    let mut index = 0;
    while index < 256 {
        let byte = index as u8;
        if byte.is_ascii_alphanumeric() || has(b"-_.!~*'()", byte) {
            table[index] = UNRESERVED | USER | PASSWORD | PARAM | HEADER;
        }
        if has(b"%&=+$,;?/", byte) {
            table[index] |= USER;
        }
        if has(b"%&=+$,", byte) {
            table[index] |= PASSWORD;
        }
        if has(b"%[]/:&+$", byte) {
            table[index] |= PARAM;
        }
        if has(b"%[]/?:+$=&", byte) {
            table[index] |= HEADER;
        }
        if byte.is_ascii_alphanumeric() || has(b"-._", byte) {
            table[index] |= HOST;
        }
        if byte.is_ascii_digit() || byte == b'.' {
            table[index] |= DIGIT_OR_DOT;
        }
        index += 1;
    }
    table
};

/// Checks that every `%` starts a `%HEX HEX` escape.
fn escapes_well_formed(bytes: &[u8]) -> bool {
    let mut index = 0;
    while let Some(found) = crate::syntax::find_byte(b'%', &bytes[index..]) {
        let at = index + found;
        match bytes.get(at + 1..at + 3) {
            Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                index = at + 3
            }
            _ => return false,
        }
    }
    true
}

impl<'a> Uri<'a> {
    /// Parses `raw` as an absolute URI. SIP and SIPS URIs are checked against RFC 3261
    /// §25.1, tel URIs against RFC 3966 loosely (number and parameters); other schemes only
    /// need a scheme and a non-empty part without white space.
    pub fn parse(raw: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        let colon = crate::syntax::find_byte(b':', raw).ok_or(invalid("no scheme"))?;
        let scheme_bytes = &raw[..colon];
        let scheme_ok = scheme_bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme_bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(invalid("bad scheme"));
        }
        let rest = &raw[colon + 1..];
        if rest.is_empty() {
            return Err(invalid("nothing after the scheme"));
        }
        if scheme_bytes.eq_ignore_ascii_case(b"sip") {
            // parse_sip checks every byte against its part's character class.
            return Uri::parse_sip(raw, Scheme::Sip, rest);
        }
        if scheme_bytes.eq_ignore_ascii_case(b"sips") {
            return Uri::parse_sip(raw, Scheme::Sips, rest);
        }
        if rest
            .iter()
            .any(|&b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>' || b == b'"')
        {
            return Err(invalid("white space or delimiter inside the URI"));
        }
        if scheme_bytes.eq_ignore_ascii_case(b"tel") {
            Uri::parse_tel(raw, rest)
        } else {
            Ok(Uri {
                raw,
                scheme: Scheme::Other(scheme_bytes),
                user: None,
                password: None,
                host: Host::Domain(&[]),
                port: None,
                params: Params::default(),
                headers: None,
                opaque: rest,
            })
        }
    }

    fn parse_sip(raw: &'a [u8], scheme: Scheme<'a>, rest: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        if !escapes_well_formed(rest) {
            return Err(invalid("bad % escape"));
        }
        // '@' is legal only as the userinfo terminator: no other SIP URI part allows it.
        let (user, password, hostport_and_more) = match crate::syntax::find_byte(b'@', rest) {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match crate::syntax::find_byte(b':', userinfo) {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() || !user.iter().all(|&b| is_user_byte(b)) {
                    return Err(invalid("bad user part"));
                }
                if let Some(password) = password
                    && !password.iter().all(|&b| is_password_byte(b))
                {
                    return Err(invalid("bad password"));
                }
                (Some(user), password, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let (host, after_host) = parse_host(hostport_and_more)?;
        let mut tail = after_host;
        let mut port = None;
        if let [b':', more @ ..] = tail {
            let digits = more.iter().take_while(|b| b.is_ascii_digit()).count();
            port = Some(parse_port(&more[..digits]).ok_or(invalid("bad port"))?);
            tail = &more[digits..];
        }
        let mut params = Params::default();
        let mut headers = None;
        if let [b';', more @ ..] = tail {
            let end = crate::syntax::find_byte(b'?', more).unwrap_or(more.len());
            let section = &more[..end];
            for element in section.split(|&b| b == b';') {
                let name = element.split(|&b| b == b'=').next().unwrap_or_default();
                if name.is_empty() || !element.iter().all(|&b| is_param_byte(b) || b == b'=') {
                    return Err(invalid("bad uri-parameter"));
                }
            }
            params = Params::new(section);
            tail = &more[end..];
        }
        if let [b'?', more @ ..] = tail {
            if more.is_empty() || !more.iter().all(|&b| is_header_byte(b)) {
                return Err(invalid("bad headers component"));
            }
            headers = Some(more);
            tail = &[];
        }
        if !tail.is_empty() {
            return Err(invalid("unexpected characters after the host"));
        }
        Ok(Uri {
            raw,
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            opaque: rest,
        })
    }

    fn parse_tel(raw: &'a [u8], rest: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        let end = crate::syntax::find_byte(b';', rest).unwrap_or(rest.len());
        let number = &rest[..end];
        let number_ok = !number.is_empty()
            && number.iter().all(|&b| {
                b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
            });
        if !number_ok {
            return Err(invalid("bad telephone number"));
        }
        let params = if end < rest.len() {
            Params::new(&rest[end + 1..])
        } else {
            Params::default()
        };
        Ok(Uri {
            raw,
            scheme: Scheme::Tel,
            user: Some(number),
            password: None,
            host: Host::Domain(&[]),
            port: None,
            params,
            headers: None,
            opaque: rest,
        })
    }

    /// The value of URI parameter `name` (`Some(None)` for a flag such as `lr`).
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.params.get(name)
    }

    /// Whether the URI carries `;lr` (RFC 3261 §19.1.1 loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains(b"lr")
    }

    /// `sip:` or `sips:`.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// RFC 3261 §19.1.4 URI equality: scheme, user, password, host and port must match
    /// (user and password case-sensitively, the rest case-insensitively, escapes decoded);
    /// `user`, `ttl`, `method`, `maddr` and `transport` parameters present in only one URI
    /// make them differ, other parameters are compared only when present in both; header
    /// components must match as unordered sets. tel URIs compare per RFC 3966 §4.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self.scheme, other.scheme) {
            (Scheme::Sip, Scheme::Sip) | (Scheme::Sips, Scheme::Sips) => self.sip_equivalent(other),
            (Scheme::Tel, Scheme::Tel) => self.tel_equivalent(other),
            (Scheme::Other(a), Scheme::Other(b)) => {
                a.eq_ignore_ascii_case(b) && self.opaque == other.opaque
            }
            _ => false,
        }
    }

    fn sip_equivalent(&self, other: &Uri<'_>) -> bool {
        let same_optional = |a: Option<&[u8]>, b: Option<&[u8]>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => unescaped_eq(a, b, false),
            _ => false,
        };
        if !same_optional(self.user, other.user)
            || !same_optional(self.password, other.password)
            || !self.host.equivalent(&other.host)
            || self.port != other.port
        {
            return false;
        }
        for (name, value) in self.params.iter() {
            // A name given twice (RFC 3261 §19.1.1 forbids it) counts with its first value
            // on both sides, so the comparison stays reflexive and symmetric.
            let value = self.params.get_unescaped(name).unwrap_or(value);
            match other.params.get_unescaped(name) {
                Some(other_value) if !optional_unescaped_eq(value, other_value) => return false,
                Some(_) => {}
                None if is_significant_uri_param(name) => return false,
                None => {}
            }
        }
        for (name, _) in other.params.iter() {
            if is_significant_uri_param(name) && self.params.get_unescaped(name).is_none() {
                return false;
            }
        }
        headers_equivalent(self.headers, other.headers)
    }

    fn tel_equivalent(&self, other: &Uri<'_>) -> bool {
        let digits = |number: &[u8]| -> Vec<u8> {
            number
                .iter()
                .filter(|b| !matches!(b, b'-' | b'.' | b'(' | b')'))
                .map(u8::to_ascii_lowercase)
                .collect()
        };
        if digits(self.user.unwrap_or_default()) != digits(other.user.unwrap_or_default()) {
            return false;
        }
        let count = |params: &Params<'_>| params.iter().count();
        count(&self.params) == count(&other.params)
            && self.params.iter().all(|(name, value)| {
                let value = self.params.get_unescaped(name).unwrap_or(value);
                other
                    .params
                    .get_unescaped(name)
                    .is_some_and(|other_value| optional_unescaped_eq(value, other_value))
            })
    }
}

impl std::fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.raw))
    }
}

/// Parameters whose absence on one side makes two SIP URIs differ (RFC 3261 §19.1.4).
fn is_significant_uri_param(name: &[u8]) -> bool {
    [&b"user"[..], b"ttl", b"method", b"maddr", b"transport"]
        .iter()
        .any(|known| unescaped_eq(name, known, true))
}

impl<'a> Params<'a> {
    /// Lookup where the name may be escaped on either side (`n%61me` is `name`).
    fn get_unescaped(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|(candidate, _)| unescaped_eq(candidate, name, true))
            .map(|(_, value)| value)
    }
}

fn optional_unescaped_eq(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => unescaped_eq(a, b, true),
        _ => false,
    }
}

fn headers_equivalent(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    let split = |headers: Option<&[u8]>| -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = headers
            .unwrap_or_default()
            .split(|&b| b == b'&')
            .filter(|h| !h.is_empty())
            .map(|h| Unescaped::new(h).map(|b| b.to_ascii_lowercase()).collect())
            .collect();
        all.sort();
        all
    };
    split(a) == split(b)
}

/// Compares two raw URI parts with `%HEX HEX` escapes decoded.
pub(crate) fn unescaped_eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if !ignore_case && a == b {
        return true;
    }
    let mut left = Unescaped::new(a);
    let mut right = Unescaped::new(b);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                let same = if ignore_case {
                    x.eq_ignore_ascii_case(&y)
                } else {
                    x == y
                };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Iterator decoding `%HEX HEX` escapes of raw URI text, byte by byte, without allocating.
#[derive(Debug, Clone)]
pub struct Unescaped<'a> {
    bytes: &'a [u8],
}

impl<'a> Unescaped<'a> {
    /// Decodes `bytes` lazily. A `%` not followed by two hex digits is passed through.
    pub fn new(bytes: &'a [u8]) -> Unescaped<'a> {
        Unescaped { bytes }
    }
}

impl Iterator for Unescaped<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        match self.bytes {
            [] => None,
            [b'%', high, low, rest @ ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                self.bytes = rest;
                Some(hex_value(*high) << 4 | hex_value(*low))
            }
            [first, rest @ ..] => {
                self.bytes = rest;
                Some(*first)
            }
        }
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.wrapping_sub(b'A').wrapping_add(10),
    }
}

fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    crate::syntax::parse_u32(digits).and_then(|p| u16::try_from(p).ok())
}

/// Reads a `host` at the start of `bytes` (RFC 3261 §25.1: hostname / IPv4address /
/// IPv6reference); returns it and the bytes after it.
pub(crate) fn parse_host(bytes: &[u8]) -> Result<(Host<'_>, &[u8]), ParseError> {
    if let [b'[', more @ ..] = bytes {
        let close =
            crate::syntax::find_byte(b']', more).ok_or(invalid("unterminated IPv6 reference"))?;
        let address = &more[..close];
        let valid = address.len() >= 2
            && address.contains(&b':')
            && address
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return Err(invalid("bad IPv6 reference"));
        }
        return Ok((Host::Ipv6(address), &more[close + 1..]));
    }
    // One scan finds the end of the host and whether it can be a dotted IPv4 address.
    let mut end = 0;
    let mut digits_and_dots = true;
    while end < bytes.len() {
        let class = URI_CLASSES[usize::from(bytes[end])];
        if class & HOST == 0 {
            break;
        }
        digits_and_dots &= class & DIGIT_OR_DOT != 0;
        end += 1;
    }
    let host = &bytes[..end];
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let host = if digits_and_dots && is_ipv4(host) {
        Host::Ipv4(host)
    } else {
        Host::Domain(host)
    };
    Ok((host, &bytes[end..]))
}

fn is_ipv4(host: &[u8]) -> bool {
    let mut parts = 0;
    for part in host.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
    }
    parts == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri<'_> {
        Uri::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// RFC 3261 §19.1.4: the URIs it lists as equivalent.
    #[test]
    fn rfc3261_equal_uris() {
        let groups: &[&[&str]] = &[
            &[
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ],
            &[
                "sip:carol@chicago.com",
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ],
            &[
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ],
            &[
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ],
        ];
        for group in groups {
            for a in group.iter() {
                for b in group.iter() {
                    assert!(uri(a).equivalent(&uri(b)), "{a} should equal {b}");
                }
            }
        }
    }

    /// RFC 3261 §19.1.4: the URIs it lists as not equivalent.
    #[test]
    fn rfc3261_unequal_uris() {
        let pairs = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.example", "sip:bob@192.0.2.4"),
        ];
        for (a, b) in pairs {
            assert!(!uri(a).equivalent(&uri(b)), "{a} must differ from {b}");
            assert!(!uri(b).equivalent(&uri(a)), "{b} must differ from {a}");
        }
        assert!(!uri("sip:a@b").equivalent(&uri("sips:a@b")));
    }

    #[test]
    fn parts_are_exposed_raw() {
        let parsed = uri("sips:user:pw@[2001:db8::10]:5070;transport=tls;lr?Route=%3Csip:x%3E");
        assert_eq!(parsed.scheme, Scheme::Sips);
        assert_eq!(parsed.user, Some(&b"user"[..]));
        assert_eq!(parsed.password, Some(&b"pw"[..]));
        assert_eq!(parsed.host, Host::Ipv6(b"2001:db8::10"));
        assert_eq!(parsed.port, Some(5070));
        assert_eq!(parsed.param(b"transport"), Some(Some(&b"tls"[..])));
        assert!(parsed.is_loose_route());
        assert_eq!(parsed.headers, Some(&b"Route=%3Csip:x%3E"[..]));
        assert_eq!(parsed.host.ip(), "2001:db8::10".parse().ok());
    }

    #[test]
    fn semicolon_in_user_part() {
        let parsed = uri("sip:user;par=u%40example.net@example.com");
        assert_eq!(parsed.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(parsed.host, Host::Domain(b"example.com"));
        assert!(parsed.params.is_empty());
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "sip:2001:db8::10",
            "sip:user@host:99999",
            "sip:user@host:",
            "sip:user@",
            "sip:us er@host",
            "sip:user@host;;",
            "sip:user@[::1",
            "sip:%zz@host",
            "sip:",
            "1sip:x",
            "nocolon",
        ] {
            assert!(
                Uri::parse(bad.as_bytes()).is_err(),
                "{bad} must be rejected"
            );
        }
    }

    #[test]
    fn tel_and_other_schemes() {
        let tel = uri("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(tel.scheme, Scheme::Tel);
        assert!(tel.equivalent(&uri("tel:+12015550123;phone-context=example.com")));
        assert!(!tel.equivalent(&uri("tel:+12015550124;phone-context=example.com")));
        let other = uri("http://www.example.com");
        assert_eq!(other.scheme, Scheme::Other(b"http"));
        assert_eq!(other.opaque, b"//www.example.com");
    }

    #[test]
    fn ipv6_hosts_compare_as_addresses() {
        assert!(uri("sip:a@[2001:db8:0::1]").equivalent(&uri("sip:a@[2001:DB8::1]")));
        assert!(!uri("sip:a@[2001:db8::1]").equivalent(&uri("sip:a@[2001:db8::2]")));
        assert!(
            uri("sip:a@[2001:db8:::192.0.2.1]").equivalent(&uri("sip:a@[2001:DB8:::192.0.2.1]"))
        );
    }

    #[test]
    fn escaped_user_equals_plain() {
        assert!(uri("sip:%75se%72@example.com").equivalent(&uri("sip:user@example.com")));
        assert!(
            uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
                .equivalent(&uri("sip:caller@host5.example.net;lr;name=value%2541"))
        );
    }
}
