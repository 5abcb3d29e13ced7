//! Typed views of header values. Each parses lazily from one raw value (one list element
//! for list headers) and borrows from the message buffer.

use crate::params::{Params, validate_header_params};
use crate::syntax::{
    is_lws, is_token, is_token_byte, parse_u32, quoted_string_end, skip_lws, trim, unquote,
};
use crate::uri::{Host, Uri, parse_host};
use crate::{HeaderName, Method, ParseError};
use smallvec::SmallVec;
use std::borrow::Cow;

fn token_end(bytes: &[u8], from: usize) -> usize {
    let mut index = from;
    while index < bytes.len() && is_token_byte(bytes[index]) {
        index += 1;
    }
    index
}

/// Reads `SWS ";" params` at the end of a value: returns the parameter section, after
/// checking it against `generic-param` (RFC 3261 §25.1).
fn trailing_params<'a>(rest: &'a [u8], header: &HeaderName) -> Result<Params<'a>, ParseError> {
    let rest = trim(rest);
    match rest {
        [] => Ok(Params::default()),
        [b';', section @ ..] => {
            validate_header_params(section)
                .map_err(|reason| ParseError::header(header.clone(), reason))?;
            Ok(Params::new(section))
        }
        _ => Err(ParseError::header(
            header.clone(),
            "unexpected characters before the parameters",
        )),
    }
}

/// One `via-parm` (RFC 3261 §20.42, §25.1): `SIP/2.0/UDP host:port;branch=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The value as received.
    pub raw: &'a [u8],
    pub protocol_name: &'a [u8],
    pub protocol_version: &'a [u8],
    /// The transport token as received (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`, or any
    /// other token, RFC 4475 §3.1.1.10).
    pub transport: &'a [u8],
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port, if given.
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value (a single list element).
    pub fn parse(raw: &'a [u8]) -> Result<Via<'a>, ParseError> {
        let fail = |reason| ParseError::header(HeaderName::Via, reason);
        let value = trim(raw);
        let name_end = token_end(value, 0);
        let protocol_name = &value[..name_end];
        let mut index = skip_lws(value, name_end);
        if protocol_name.is_empty() || value.get(index) != Some(&b'/') {
            return Err(fail("bad sent-protocol"));
        }
        index = skip_lws(value, index + 1);
        let version_end = token_end(value, index);
        let protocol_version = &value[index..version_end];
        index = skip_lws(value, version_end);
        if protocol_version.is_empty() || value.get(index) != Some(&b'/') {
            return Err(fail("bad sent-protocol"));
        }
        index = skip_lws(value, index + 1);
        let transport_end = token_end(value, index);
        let transport = &value[index..transport_end];
        let host_start = skip_lws(value, transport_end);
        if transport.is_empty() || host_start == transport_end {
            return Err(fail("bad transport"));
        }
        let (host, after_host) =
            parse_host(&value[host_start..]).map_err(|_| fail("bad sent-by host"))?;
        let mut rest = after_host;
        let mut port = None;
        let after_lws = &rest[skip_lws(rest, 0)..];
        if let [b':', more @ ..] = after_lws {
            let more = &more[skip_lws(more, 0)..];
            let digits = more.iter().take_while(|b| b.is_ascii_digit()).count();
            let number = parse_u32(&more[..digits])
                .filter(|_| digits <= 5)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| fail("bad sent-by port"))?;
            port = Some(number);
            rest = &more[digits..];
        }
        let params = trailing_params(rest, &HeaderName::Via)?;
        Ok(Via {
            raw: value,
            protocol_name,
            protocol_version,
            transport,
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter, raw (RFC 3261 §8.1.1.7).
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.params.get(b"branch").flatten()
    }

    /// The `received` parameter, raw (RFC 3261 §18.2.1); IPv6 may come with or without
    /// brackets (RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'a [u8]> {
        self.params.get(b"received").flatten()
    }

    /// `rport` (RFC 3581): `None` absent, `Some(None)` present without a value,
    /// `Some(Some(port))` filled in. A malformed value reads as `Some(None)`.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get(b"rport").map(|value| {
            value
                .and_then(parse_u32)
                .and_then(|p| u16::try_from(p).ok())
        })
    }

    /// `maddr` parameter, raw.
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.get(b"maddr").flatten()
    }

    /// Any parameter by name (case-insensitive), raw.
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.params.get(name)
    }

    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(b"z9hG4bK"))
    }
}

/// `name-addr` or `addr-spec` with header parameters: the value of From, To, Contact,
/// Route, Record-Route, Path, … (RFC 3261 §20.10, §25.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The value as received (trimmed).
    pub raw: &'a [u8],
    /// The display name as received: quoted (quotes kept) or a run of tokens.
    pub display_name: Option<&'a [u8]>,
    pub uri: Uri<'a>,
    /// Whether the URI was enclosed in `<>` (name-addr form).
    pub angle_brackets: bool,
    /// Header parameters (after the URI), e.g. `tag`, `expires`, `q`.
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value of header `header` (used to name the header in errors).
    pub fn parse(raw: &'a [u8], header: &HeaderName) -> Result<NameAddr<'a>, ParseError> {
        let fail = |reason| ParseError::header(header.clone(), reason);
        let value = trim(raw);
        if value.is_empty() {
            return Err(fail("empty value"));
        }
        let mut display_name = None;
        let mut index = 0;
        if value[0] == b'"' {
            let end = quoted_string_end(value, 0)
                .ok_or_else(|| fail("unterminated quoted display name"))?;
            display_name = Some(&value[..end]);
            index = skip_lws(value, end);
            if value.get(index) != Some(&b'<') {
                return Err(fail("quoted display name without <addr-spec>"));
            }
        } else if let Some(open) = crate::syntax::find_byte(b'<', value) {
            // Unquoted display name: *(token LWS) (RFC 3261 §25.1; RFC 4475 §3.1.2.15).
            let name = trim(&value[..open]);
            if !name.is_empty() {
                let tokens_ok = name
                    .split(|&b| is_lws(b))
                    .all(|word| word.is_empty() || is_token(word));
                if !tokens_ok {
                    return Err(fail("display name is neither quoted nor a token list"));
                }
                display_name = Some(name);
            }
            index = open;
        }
        if value.get(index) == Some(&b'<') {
            let close = crate::syntax::find_byte(b'>', &value[index..])
                .ok_or_else(|| fail("missing >"))?
                + index;
            let uri = Uri::parse(&value[index + 1..close]).map_err(|_| fail("bad URI"))?;
            let params = trailing_params(&value[close + 1..], header)?;
            return Ok(NameAddr {
                raw: value,
                display_name,
                uri,
                angle_brackets: true,
                params,
            });
        }
        // addr-spec form: parameters after the URI are header parameters, and the URI may
        // not carry `?headers` or `;` of its own (RFC 3261 §20.10, RFC 4475 §3.1.2.13).
        let end = value
            .iter()
            .position(|&b| b == b';' || b == b',' || is_lws(b))
            .unwrap_or(value.len());
        let uri_bytes = &value[..end];
        if uri_bytes.contains(&b'?') {
            return Err(fail("URI with headers must be enclosed in <>"));
        }
        let uri = Uri::parse(uri_bytes).map_err(|_| fail("bad URI"))?;
        let params = trailing_params(&value[end..], header)?;
        Ok(NameAddr {
            raw: value,
            display_name: None,
            uri,
            angle_brackets: false,
            params,
        })
    }

    /// The `tag` parameter, raw (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get(b"tag").flatten()
    }

    /// Any header parameter by name (case-insensitive), raw.
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.params.get(name)
    }

    /// The display name without quotes and `quoted-pair` escapes.
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, [u8]>> {
        self.display_name.map(unquote)
    }
}

/// One Contact value: `*` or an address (RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a borrowed view on the stack; boxing would allocate per value"
)]
pub enum Contact<'a> {
    /// `Contact: *` (only valid in REGISTER with Expires: 0).
    Wildcard,
    Address(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact list element.
    pub fn parse(raw: &'a [u8]) -> Result<Contact<'a>, ParseError> {
        if trim(raw) == b"*" {
            Ok(Contact::Wildcard)
        } else {
            NameAddr::parse(raw, &HeaderName::Contact).map(Contact::Address)
        }
    }

    /// The address, unless this is the wildcard.
    pub fn address(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Wildcard => None,
            Contact::Address(address) => Some(address),
        }
    }

    /// The `expires` contact parameter, when present and numeric.
    pub fn expires(&self) -> Option<u32> {
        self.address()?
            .param(b"expires")
            .flatten()
            .and_then(parse_u32)
    }
}

/// CSeq (RFC 3261 §20.16): sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub number: u32,
    pub method: Method,
    /// The method token as received.
    pub method_raw: &'a [u8],
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value. The number must fit 32 bits (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.4).
    pub fn parse(raw: &'a [u8]) -> Result<CSeq<'a>, ParseError> {
        let fail = |reason| ParseError::header(HeaderName::CSeq, reason);
        let value = trim(raw);
        let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
        let number = parse_u32(&value[..digits])
            .ok_or_else(|| fail("sequence number is not a 32-bit number"))?;
        let method_start = skip_lws(value, digits);
        if method_start == digits {
            return Err(fail("no white space after the sequence number"));
        }
        let method_raw = &value[method_start..];
        if !is_token(method_raw) {
            return Err(fail("method is not a token"));
        }
        Ok(CSeq {
            number,
            method: Method::from_bytes(method_raw),
            method_raw,
        })
    }
}

/// Authorization / Proxy-Authorization credentials (RFC 3261 §20.7, §25.1; RFC 7616).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub raw: &'a [u8],
    /// `Digest` or any other scheme token, as received.
    pub scheme: &'a [u8],
    /// `(name, raw value)` in order; quoted values keep their quotes here.
    pub params: SmallVec<[(&'a [u8], &'a [u8]); 12]>,
    /// A `token68` form (`Basic dXNlcg==`), when the value is not a parameter list.
    pub token68: Option<&'a [u8]>,
}

/// WWW-Authenticate / Proxy-Authenticate challenge: same shape as [`Credentials`].
pub type Challenge<'a> = Credentials<'a>;

impl<'a> Credentials<'a> {
    /// Parses `scheme LWS auth-param *(COMMA auth-param)`; `header` names the header in errors.
    pub fn parse(raw: &'a [u8], header: &HeaderName) -> Result<Credentials<'a>, ParseError> {
        let fail = |reason| ParseError::header(header.clone(), reason);
        let value = trim(raw);
        let scheme_end = token_end(value, 0);
        let scheme = &value[..scheme_end];
        if scheme.is_empty() || (scheme_end < value.len() && !is_lws(value[scheme_end])) {
            return Err(fail("bad auth scheme"));
        }
        let rest = trim(&value[scheme_end..]);
        let mut params = SmallVec::new();
        let mut token68 = None;
        if !rest.is_empty() {
            // Parameters start with `token =`; a token68 (`Basic dXNlcg==`) has no `=` after its
            // first token except trailing padding.
            let after_first = skip_lws(rest, token_end(rest, 0));
            let looks_like_params = rest.get(after_first) == Some(&b'=')
                && rest
                    .get(skip_lws(rest, after_first + 1))
                    .is_some_and(|&b| b != b'=');
            if looks_like_params {
                for element in crate::syntax::ListSplit::new(rest) {
                    let element = element.map_err(|_| fail("unterminated quoted string"))?;
                    if element.is_empty() {
                        continue;
                    }
                    let eq = crate::syntax::find_byte(b'=', element)
                        .ok_or_else(|| fail("auth-param without ="))?;
                    let name = trim(&element[..eq]);
                    let param_value = trim(&element[eq + 1..]);
                    let value_ok = match param_value.first() {
                        Some(b'"') => quoted_string_end(param_value, 0) == Some(param_value.len()),
                        Some(_) => param_value
                            .iter()
                            .all(|&b| is_token_byte(b) || matches!(b, b'/' | b':' | b'=')),
                        None => false,
                    };
                    if !is_token(name) || !value_ok {
                        return Err(fail("malformed auth-param"));
                    }
                    params.push((name, param_value));
                }
            } else {
                token68 = Some(rest);
            }
        }
        Ok(Credentials {
            raw: value,
            scheme,
            params,
            token68,
        })
    }

    /// Whether the scheme is `Digest` (case-insensitive).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"Digest")
    }

    /// The value of `name` (case-insensitive), unquoted: `nonce="abc"` gives `abc`.
    pub fn param(&self, name: &[u8]) -> Option<Cow<'a, [u8]>> {
        self.raw_param(name).map(unquote)
    }

    /// The value of `name` exactly as received (quotes kept).
    pub fn raw_param(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.params
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// Content-Type (RFC 3261 §20.15): `type/subtype;params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    pub raw: &'a [u8],
    pub media_type: &'a [u8],
    pub subtype: &'a [u8],
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses a media type such as `application/sdp;charset=utf-8`.
    pub fn parse(raw: &'a [u8]) -> Result<MediaType<'a>, ParseError> {
        let fail = |reason| ParseError::header(HeaderName::ContentType, reason);
        let value = trim(raw);
        let type_end = token_end(value, 0);
        let slash = skip_lws(value, type_end);
        if type_end == 0 || value.get(slash) != Some(&b'/') {
            return Err(fail("missing type/subtype"));
        }
        let subtype_start = skip_lws(value, slash + 1);
        let subtype_end = token_end(value, subtype_start);
        if subtype_end == subtype_start {
            return Err(fail("missing subtype"));
        }
        let params = trailing_params(&value[subtype_end..], &HeaderName::ContentType)?;
        Ok(MediaType {
            raw: value,
            media_type: &value[..type_end],
            subtype: &value[subtype_start..subtype_end],
            params,
        })
    }

    /// Case-insensitive match, e.g. `is(b"application", b"sdp")`.
    pub fn is(&self, media_type: &[u8], subtype: &[u8]) -> bool {
        self.media_type.eq_ignore_ascii_case(media_type)
            && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Session-Expires (RFC 4028 §4): delta-seconds and `refresher`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    pub delta_seconds: u32,
    pub params: Params<'a>,
}

impl<'a> SessionExpires<'a> {
    /// Parses `delta-seconds *(SEMI se-params)`.
    pub fn parse(raw: &'a [u8]) -> Result<SessionExpires<'a>, ParseError> {
        let value = trim(raw);
        let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
        let delta_seconds = parse_u32(&value[..digits])
            .ok_or_else(|| ParseError::header(HeaderName::SessionExpires, "bad delta-seconds"))?;
        let params = trailing_params(&value[digits..], &HeaderName::SessionExpires)?;
        Ok(SessionExpires {
            delta_seconds,
            params,
        })
    }

    /// `uac` or `uas`, raw.
    pub fn refresher(&self) -> Option<&'a [u8]> {
        self.params.get(b"refresher").flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_folding_and_spaces() {
        let via = Via::parse(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ",
        )
        .unwrap();
        assert_eq!(via.transport, b"TCP");
        assert_eq!(via.host, Host::Domain(b"spindle.example.com"));
        assert_eq!(via.branch(), Some(&b"z9hG4bK9ikj8"[..]));
        assert!(via.has_rfc3261_branch());
    }

    #[test]
    fn via_ipv6_and_rport() {
        let via = Via::parse(
            b"SIP/2.0/UDP [2001:db8::9:1]:5061;received=2001:db8::9:255;rport;branch=z9hG4bKas3",
        )
        .unwrap();
        assert_eq!(via.host, Host::Ipv6(b"2001:db8::9:1"));
        assert_eq!(via.port, Some(5061));
        assert_eq!(via.received(), Some(&b"2001:db8::9:255"[..]));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(via.branch(), Some(&b"z9hG4bKas3"[..]));
        let filled = Via::parse(b"SIP/2.0/UDP 10.0.0.1;rport=5070").unwrap();
        assert_eq!(filled.rport(), Some(Some(5070)));
        assert_eq!(filled.rport(), Some(Some(5070)));
    }

    #[test]
    fn via_rejects_garbage() {
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;"[..],
            b"SIP/2.0 host",
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDPhost",
        ] {
            assert!(Via::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn name_addr_forms() {
        let quoted = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
            &HeaderName::From,
        )
        .unwrap();
        assert_eq!(quoted.tag(), Some(&b"98asjd8"[..]));
        assert_eq!(
            quoted.display_name_unquoted().as_deref(),
            Some(&b"J Rosenberg \\\""[..])
        );
        let bare = NameAddr::parse(b"sip:user@example.com;tag=1;x", &HeaderName::To).unwrap();
        assert!(!bare.angle_brackets);
        assert_eq!(bare.uri.raw, b"sip:user@example.com");
        assert_eq!(bare.tag(), Some(&b"1"[..]));
        assert_eq!(bare.param(b"x"), Some(None));
        let tokens = NameAddr::parse(b"Bob Smith<sip:bob@b.example>", &HeaderName::To).unwrap();
        assert_eq!(tokens.display_name, Some(&b"Bob Smith"[..]));
    }

    #[test]
    fn name_addr_rejections() {
        for bad in [
            &b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43"[..],
            b"\"Mr. J. User <sip:j.user@example.com>",
            b"\"Watson, Thomas\" < sip:t.watson@example.org >",
            b"sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            b"\"Joe\" <sip:joe@example.org>;;;;",
            b"<sip:x@y",
        ] {
            assert!(
                NameAddr::parse(bad, &HeaderName::To).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn cseq_parsing() {
        let cseq = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(cseq.number, 9);
        assert_eq!(cseq.method, Method::Invite);
        assert!(CSeq::parse(b"36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse(b"1INVITE").is_err());
        assert!(CSeq::parse(b"1 INVITE x").is_err());
    }

    #[test]
    fn digest_credentials() {
        let credentials = Credentials::parse(
            b"Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b, 7102\",\r\n uri=\"sip:bob@biloxi.com\", response=\"6629\", algorithm=MD5, qop=auth, nc=00000001",
            &HeaderName::Authorization,
        )
        .unwrap();
        assert!(credentials.is_digest());
        assert_eq!(
            credentials.param(b"NONCE").as_deref(),
            Some(&b"dcd98b, 7102"[..])
        );
        assert_eq!(
            credentials.param(b"algorithm").as_deref(),
            Some(&b"MD5"[..])
        );
        assert_eq!(credentials.params.len(), 8);
        let unknown = Credentials::parse(
            b"NoOneKnowsThisScheme opaque-data=here",
            &HeaderName::Authorization,
        )
        .unwrap();
        assert_eq!(unknown.scheme, b"NoOneKnowsThisScheme");
        assert_eq!(unknown.param(b"opaque-data").as_deref(), Some(&b"here"[..]));
        let basic = Credentials::parse(b"Basic dXNlcjpwYXNz", &HeaderName::Authorization).unwrap();
        assert_eq!(basic.token68, Some(&b"dXNlcjpwYXNz"[..]));
        assert!(Credentials::parse(b"Digest nonce=\"abc", &HeaderName::Authorization).is_err());
    }

    #[test]
    fn media_type_and_session_expires() {
        let media = MediaType::parse(
            b"multipart/signed;protocol=\"application/pkcs7-signature\"; micalg=sha1",
        )
        .unwrap();
        assert!(media.is(b"MULTIPART", b"signed"));
        assert_eq!(media.params.get(b"micalg"), Some(Some(&b"sha1"[..])));
        assert!(MediaType::parse(b"application").is_err());
        let se = SessionExpires::parse(b"1800;refresher=uac").unwrap();
        assert_eq!(se.delta_seconds, 1800);
        assert_eq!(se.refresher(), Some(&b"uac"[..]));
    }
}
