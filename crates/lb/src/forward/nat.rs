//! NAT traversal of the forwarding core: detecting a phone behind NAT (Kamailio's
//! `nat_uac_test`), the Contact `alias` parameter that carries its real address and transport,
//! and the URI parameter edits it needs. Pure functions over the message and how it arrived.

use super::*;

/// NAT detection in the manner of Kamailio's `nat_uac_test`: the message came over a
/// stream (in-dialog requests must reuse the connection), the top Via or a Contact names an
/// address other than the source, or a Contact names a private address.
pub(super) fn is_behind_nat(message: &Message, inbound: &Inbound) -> bool {
    if inbound.transport.is_stream() {
        return true;
    }
    let source = inbound.remote;
    let differs = |host: &Host<'_>, port: Option<u16>| {
        host.ip().map(|ip| ip.to_canonical()) != Some(source.ip().to_canonical())
            || port.unwrap_or(5060) != source.port()
    };
    // A response's top Via is ours; only a request's says where the phone thinks it is.
    if message.is_request()
        && let Ok(via) = message.top_via()
        && differs(&via.host, via.port)
    {
        return true;
    }
    message
        .contacts()
        .filter_map(Result::ok)
        .any(|contact| match contact {
            Contact::Wildcard => false,
            Contact::Address(address) => {
                differs(&address.uri.host, address.uri.port)
                    || address.uri.host.ip().is_some_and(is_private)
            }
        })
}

/// RFC 1918, RFC 6598 shared space, link-local and IPv6 unique-local addresses.
pub(super) fn is_private(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Rewrites every Contact: any `alias` a client wrote is removed (it would let a client
/// steer our traffic), and when `nat` is given our alias with the real source is added.
pub(super) fn rewrite_contacts(message: &mut Message, nat: Option<&Inbound>) {
    let has_alias = message.contacts().filter_map(Result::ok).any(|contact| {
        contact
            .address()
            .is_some_and(|address| address.uri.param(ALIAS_PARAMETER).is_some())
    });
    if nat.is_none() && !has_alias {
        return;
    }
    let alias = nat.map(|inbound| {
        format!(
            ";alias={}~{}~{}",
            host_text(inbound.remote.ip()),
            inbound.remote.port(),
            alias_protocol(inbound.transport)
        )
    });
    let mut values = Vec::new();
    for contact in message.header_values(&HeaderName::Contact) {
        let Ok(Contact::Address(address)) = Contact::parse(contact) else {
            values.push(contact.to_vec());
            continue;
        };
        let uri = remove_uri_parameter(address.uri.raw, ALIAS_PARAMETER);
        let uri_start = offset_in(address.raw, address.uri.raw);
        let uri_end = uri_start + address.uri.raw.len();
        let mut value = Vec::with_capacity(address.raw.len() + 32);
        if address.angle_brackets {
            value.extend_from_slice(&address.raw[..uri_start]);
            value.extend_from_slice(&uri);
            if let Some(alias) = &alias {
                value.extend_from_slice(alias.as_bytes());
            }
            value.extend_from_slice(&address.raw[uri_end..]);
        } else {
            // addr-spec form: parameters after the URI belong to the header, so the URI
            // needs brackets before it can take a parameter (RFC 3261 §20.10).
            value.push(b'<');
            value.extend_from_slice(&uri);
            if let Some(alias) = &alias {
                value.extend_from_slice(alias.as_bytes());
            }
            value.push(b'>');
            value.extend_from_slice(&address.raw[uri_end..]);
        }
        values.push(value);
    }
    if values.is_empty() {
        return;
    }
    let joined = values.join(&b", "[..]);
    message.replace_header(HeaderName::Contact, joined);
}

/// Byte offset of `inner` inside `outer` (`inner` is a sub-slice of `outer`).
pub(super) fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize)
        .saturating_sub(outer.as_ptr() as usize)
        .min(outer.len())
}

/// Removes `;name` / `;name=value` from a URI (or any `;`-parameter list), keeping the rest
/// byte for byte.
pub(super) fn remove_uri_parameter(uri: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(uri.len());
    let mut rest = uri;
    // Only the parameter section is searched; `?headers` are copied as they are.
    let headers_start = rest.iter().position(|&b| b == b'?').unwrap_or(rest.len());
    let headers = &uri[headers_start..];
    rest = &rest[..headers_start];
    let mut first = true;
    for part in rest.split(|&b| b == b';') {
        if !first {
            let part_name = part.split(|&b| b == b'=').next().unwrap_or_default();
            if part_name.trim_ascii().eq_ignore_ascii_case(name) {
                continue;
            }
            out.push(b';');
        }
        first = false;
        out.extend_from_slice(part);
    }
    out.extend_from_slice(headers);
    out
}

/// `IP~PORT~PROTO` → destination (Kamailio numbering: 1 UDP, 2 TCP, 3 TLS).
pub(super) fn parse_alias(alias: &[u8]) -> Option<(TransportProtocol, SocketAddr)> {
    let text = std::str::from_utf8(alias).ok()?;
    let mut parts = text.rsplitn(3, '~');
    let protocol = parts.next()?;
    let port: u16 = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let transport = match protocol {
        "1" => TransportProtocol::Udp,
        "2" => TransportProtocol::Tcp,
        "3" => TransportProtocol::Tls,
        _ => return None,
    };
    Some((transport, SocketAddr::new(ip, port)))
}

pub(super) fn alias_protocol(transport: TransportProtocol) -> u8 {
    match transport {
        TransportProtocol::Udp => 1,
        TransportProtocol::Tcp => 2,
        TransportProtocol::Tls => 3,
    }
}

/// An IP literal as a URI host: IPv6 in brackets (RFC 3261 §25.1).
pub(super) fn host_text(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
