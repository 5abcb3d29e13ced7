//! The SDP (RFC 8866) the relay reads and rewrites.
//!
//! The rewriter works line by line and keeps the order and text of every line it does not have
//! to change (the mr12-style in-place edit, ng-protocol.md §4): `c=` and `m=` point at the relay,
//! `a=rtcp` follows the relay's RTCP port, `o=` changes with `replace origin`, ICE attributes go
//! with `ICE remove`, and a media section with no direction attribute gets `a=sendrecv` and one
//! with no `a=rtcp` gets `a=rtcp:<relay RTP port + 1>` (rtpengine always prints both; rejected
//! port-0 sections get neither). Unlike rtpengine, no `a=rtpmap` is added for static payload
//! types and session-level direction attributes stay where they are. It accepts LF-only line
//! ends, a missing `s=` and trailing blanks, and always writes CRLF (RFC 8866 §5).

use std::net::IpAddr;

/// Why an SDP body was refused. `Display` is the rtpengine `error-reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("Failed to parse SDP")]
    NotSdp,
    #[error("Failed to parse SDP")]
    MalformedMedia { line: usize },
    #[error("Failed to parse SDP")]
    NotUtf8,
    #[error("Error rewriting SDP")]
    MissingRelayPort { media_index: usize },
}

/// RFC 8866 §6.7 media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attribute(attribute: &str) -> Option<Self> {
        match attribute {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// One m= section as the relay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media_type: String,
    /// RTP port; 0 = rejected or disabled stream.
    pub port: u16,
    pub protocol: String,
    /// Media-level c= if present, else the session-level one (RFC 8866 §5.7).
    pub connection: Option<IpAddr>,
    /// `a=rtcp` port (RFC 3605), else RTP port + 1 applies.
    pub rtcp_port: Option<u16>,
    /// Media-level direction, else session-level, else sendrecv.
    pub direction: Direction,
}

/// What the relay reads from an SDP body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    pub origin_address: Option<IpAddr>,
    pub session_connection: Option<IpAddr>,
    pub media: Vec<MediaDescription>,
}

/// How to rewrite an SDP body towards its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteOptions {
    /// The relay address the recipient must send to.
    pub relay_address: IpAddr,
    /// The relay's RTP port for each m= line, in order (RTCP = port + 1).
    pub media_ports: Vec<u16>,
    /// `replace: origin`.
    pub replace_origin: bool,
    /// `ICE: remove`.
    pub remove_ice: bool,
}

/// Attributes of ICE (RFC 8839 §5) that `ICE remove` strips.
const ICE_ATTRIBUTES: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "ice-pacing",
    "candidate",
    "remote-candidates",
    "end-of-candidates",
];

/// Splits into lines without their CR/LF and trailing blanks; empty lines are skipped.
fn lines(sdp: &str) -> impl Iterator<Item = (usize, &str)> {
    sdp.split('\n')
        .map(|line| line.trim_end_matches(['\r', ' ', '\t']))
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
}

/// Splits `x=value`.
fn split_line(line: &str) -> Option<(u8, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b'=' && bytes[0].is_ascii_lowercase() {
        Some((bytes[0], &line[2..]))
    } else {
        None
    }
}

/// The address of `IN IP4 <addr>[/ttl]`; `None` for names and unknown types.
fn connection_address(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_ascii_whitespace();
    let _network = fields.next()?;
    let _address_type = fields.next()?;
    let address = fields.next()?;
    address.split('/').next()?.parse().ok()
}

fn attribute_name(value: &str) -> &str {
    value.split(':').next().unwrap_or(value)
}

fn parse_media_line(value: &str, line: usize) -> Result<(String, u16, String), SdpError> {
    let mut fields = value.split_ascii_whitespace();
    let media_type = fields.next().ok_or(SdpError::MalformedMedia { line })?;
    let port_field = fields.next().ok_or(SdpError::MalformedMedia { line })?;
    let protocol = fields.next().ok_or(SdpError::MalformedMedia { line })?;
    let port = port_field
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or(SdpError::MalformedMedia { line })?;
    Ok((media_type.to_owned(), port, protocol.to_owned()))
}

fn as_text(sdp: &[u8]) -> Result<&str, SdpError> {
    let text = std::str::from_utf8(sdp).map_err(|_| SdpError::NotUtf8)?;
    let mut all = lines(text);
    match all.next() {
        Some((_, first)) if first.starts_with("v=") => Ok(text),
        _ => Err(SdpError::NotSdp),
    }
}

/// Reads the addresses, ports and directions of an SDP body.
///
/// # Errors
/// [`SdpError`] when the body is not UTF-8, does not start with `v=`, or has a broken m= line.
pub fn parse(sdp: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = as_text(sdp)?;
    let mut session = SessionDescription::default();
    let mut session_direction = None;
    let mut media_direction: Vec<Option<Direction>> = Vec::new();
    let mut media_connection: Vec<Option<IpAddr>> = Vec::new();
    for (number, line) in lines(text) {
        let Some((kind, value)) = split_line(line) else {
            continue;
        };
        let in_media = !session.media.is_empty();
        match kind {
            b'o' => {
                let address = value.split_ascii_whitespace().nth(5);
                session.origin_address = address.and_then(|a| a.parse().ok());
            }
            b'c' if in_media => {
                if let Some(last) = media_connection.last_mut() {
                    *last = connection_address(value);
                }
            }
            b'c' => session.session_connection = connection_address(value),
            b'm' => {
                let (media_type, port, protocol) = parse_media_line(value, number + 1)?;
                session.media.push(MediaDescription {
                    media_type,
                    port,
                    protocol,
                    connection: None,
                    rtcp_port: None,
                    direction: Direction::SendRecv,
                });
                media_direction.push(None);
                media_connection.push(None);
            }
            b'a' => {
                let direction = Direction::from_attribute(value);
                if let Some(media) = session.media.last_mut() {
                    if let Some(rtcp) = value.strip_prefix("rtcp:") {
                        media.rtcp_port = rtcp
                            .split_ascii_whitespace()
                            .next()
                            .and_then(|p| p.parse().ok());
                    }
                    if direction.is_some()
                        && let Some(last) = media_direction.last_mut()
                    {
                        *last = direction;
                    }
                } else if direction.is_some() {
                    session_direction = direction;
                }
            }
            _ => {}
        }
    }
    for ((media, direction), connection) in session
        .media
        .iter_mut()
        .zip(media_direction)
        .zip(media_connection)
    {
        media.direction = direction.or(session_direction).unwrap_or_default();
        media.connection = connection.or(session.session_connection);
    }
    Ok(session)
}

fn address_fields(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("IN IP4 {v4}"),
        IpAddr::V6(v6) => format!("IN IP6 {v6}"),
    }
}

/// Whether a c= line holds the hold address 0.0.0.0 / :: (RFC 3264 §8.4 legacy), kept as is.
fn is_unspecified_connection(value: &str) -> bool {
    connection_address(value).is_some_and(|a| a.is_unspecified())
}

/// Rewrites an SDP body so the recipient sends its media to the relay.
///
/// # Errors
/// [`SdpError`] as for [`parse`], or [`SdpError::MissingRelayPort`] when `options.media_ports`
/// has fewer entries than the body has m= lines.
pub fn rewrite(sdp: &[u8], options: &RewriteOptions) -> Result<Vec<u8>, SdpError> {
    let text = as_text(sdp)?;
    let mut out = String::with_capacity(text.len() + 64);
    let session_has_direction = lines(text)
        .take_while(|(_, line)| !line.starts_with("m="))
        .filter_map(|(_, line)| split_line(line))
        .any(|(kind, value)| kind == b'a' && Direction::from_attribute(value).is_some());
    let mut media_index: Option<usize> = None;
    // Per media section: relay port (0 = rejected), and which attributes it already had.
    let mut relay_port = 0_u16;
    let mut section_has_direction = false;
    let mut section_has_rtcp = false;
    // rtpengine always states a direction and the RTCP port; rejected streams get neither.
    let close_section = |out: &mut String, relay_port: u16, has_direction: bool, has_rtcp: bool| {
        if relay_port == 0 {
            return;
        }
        if !has_direction && !session_has_direction {
            out.push_str("a=sendrecv\r\n");
        }
        if !has_rtcp {
            out.push_str(&format!("a=rtcp:{}\r\n", relay_port.saturating_add(1)));
        }
    };
    for (number, line) in lines(text) {
        let Some((kind, value)) = split_line(line) else {
            out.push_str(line);
            out.push_str("\r\n");
            continue;
        };
        match kind {
            b'o' if options.replace_origin => {
                let fields: Vec<&str> = value.split_ascii_whitespace().collect();
                if fields.len() >= 6 {
                    out.push_str(&format!(
                        "o={} {} {} {}",
                        fields[0],
                        fields[1],
                        fields[2],
                        address_fields(options.relay_address)
                    ));
                } else {
                    out.push_str(line);
                }
            }
            // Session and media c= (rejected streams too: no address of the party leaks);
            // the 0.0.0.0 hold address stays.
            b'c' if !is_unspecified_connection(value) => {
                out.push_str(&format!("c={}", address_fields(options.relay_address)));
            }
            b'm' => {
                close_section(
                    &mut out,
                    relay_port,
                    section_has_direction,
                    section_has_rtcp,
                );
                let index = media_index.map_or(0, |i| i + 1);
                media_index = Some(index);
                section_has_direction = false;
                section_has_rtcp = false;
                let (media_type, port, _) = parse_media_line(value, number + 1)?;
                relay_port = if port == 0 {
                    0
                } else {
                    *options
                        .media_ports
                        .get(index)
                        .ok_or(SdpError::MissingRelayPort { media_index: index })?
                };
                // m=<media> <port>[/<count>] <proto> <fmt>…: the relay gives one port pair.
                let mut fields = value.split_ascii_whitespace().skip(2);
                out.push_str(&format!("m={media_type} {relay_port}"));
                for field in fields.by_ref() {
                    out.push(' ');
                    out.push_str(field);
                }
            }
            b'a' => {
                let name = attribute_name(value);
                if options.remove_ice && ICE_ATTRIBUTES.contains(&name) {
                    continue;
                }
                if media_index.is_some() && Direction::from_attribute(value).is_some() {
                    section_has_direction = true;
                }
                if name == "rtcp" && media_index.is_some() {
                    section_has_rtcp = true;
                }
                if name == "rtcp" && media_index.is_some() && relay_port != 0 {
                    let rtcp_port = relay_port.saturating_add(1);
                    let has_address = value.split_ascii_whitespace().count() > 1;
                    if has_address {
                        out.push_str(&format!(
                            "a=rtcp:{rtcp_port} {}",
                            address_fields(options.relay_address)
                        ));
                    } else {
                        out.push_str(&format!("a=rtcp:{rtcp_port}"));
                    }
                } else {
                    out.push_str(line);
                }
            }
            _ => out.push_str(line),
        }
        out.push_str("\r\n");
    }
    close_section(
        &mut out,
        relay_port,
        section_has_direction,
        section_has_rtcp,
    );
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8\r\na=rtcp:49171\r\nm=video 0 RTP/AVP 96\r\na=recvonly\r\n";

    #[test]
    fn parses_addresses_ports_and_directions() {
        let session = parse(OFFER.as_bytes()).unwrap();
        assert_eq!(session.origin_address, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(session.media.len(), 2);
        assert_eq!(session.media[0].port, 49170);
        assert_eq!(session.media[0].rtcp_port, Some(49171));
        assert_eq!(
            session.media[0].connection,
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(session.media[0].direction, Direction::SendRecv);
        assert_eq!(session.media[1].port, 0);
        assert_eq!(session.media[1].direction, Direction::RecvOnly);
    }

    #[test]
    fn media_connection_overrides_session_connection() {
        let sdp = "v=0\nc=IN IP4 10.0.0.5\nm=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.9/127\n";
        let session = parse(sdp.as_bytes()).unwrap();
        assert_eq!(
            session.media[0].connection,
            Some("10.0.0.9".parse().unwrap())
        );
    }

    #[test]
    fn refuses_non_sdp_and_broken_media() {
        assert_eq!(parse(b"hello"), Err(SdpError::NotSdp));
        assert_eq!(parse(b""), Err(SdpError::NotSdp));
        assert_eq!(parse(&[b'v', b'=', 0xff]), Err(SdpError::NotUtf8));
        assert_eq!(
            parse(b"v=0\r\nm=audio notaport RTP/AVP 0\r\n"),
            Err(SdpError::MalformedMedia { line: 2 })
        );
        assert_eq!(SdpError::NotSdp.to_string(), "Failed to parse SDP");
    }

    #[test]
    fn rewrite_points_media_at_relay_and_keeps_rejected_streams() {
        let options = RewriteOptions {
            relay_address: "203.0.113.1".parse().unwrap(),
            media_ports: vec![30000, 30002],
            replace_origin: false,
            remove_ice: false,
        };
        let out = String::from_utf8(rewrite(OFFER.as_bytes(), &options).unwrap()).unwrap();
        assert_eq!(
            out,
            "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8\r\na=rtcp:30001\r\na=sendrecv\r\nm=video 0 RTP/AVP 96\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn rewrite_needs_a_port_per_media_line() {
        let options = RewriteOptions {
            relay_address: "203.0.113.1".parse().unwrap(),
            media_ports: vec![],
            replace_origin: false,
            remove_ice: false,
        };
        assert_eq!(
            rewrite(OFFER.as_bytes(), &options),
            Err(SdpError::MissingRelayPort { media_index: 0 })
        );
    }
}
