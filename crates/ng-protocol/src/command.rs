//! Typed ng commands parsed from the request dictionary (ng-protocol.md §2–3).
//!
//! Leniency follows rtpengine: unknown keys and flags are kept aside, never an error; keys are
//! accepted with spaces or hyphens (`received from` = `received-from`); flags come as a list or
//! as one space-separated string; integers may arrive as decimal strings.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::bencode::{self, Value};

/// Why a request could not be turned into a command. `Display` gives the exact `error-reason`
/// string rtpengine uses where one exists, so Kamailio reacts the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgError {
    #[error("Invalid data (no payload)")]
    EmptyPayload,
    #[error("Invalid NG data format")]
    UnknownFormat,
    #[error("JSON ng messages are not supported, use bencode")]
    JsonNotSupported,
    #[error("Could not decode bencode dictionary")]
    Bencode(#[source] bencode::DecodeError),
    #[error("Could not decode bencode dictionary")]
    NotADictionary,
    #[error("Dictionary contains no key \"command\"")]
    NoCommand,
    #[error("Unrecognized command")]
    UnrecognizedCommand,
    #[error("Command '{0}' is not supported by this relay")]
    UnsupportedCommand(String),
    #[error("No call-id in message")]
    NoCallId,
    #[error("No from-tag in message")]
    NoFromTag,
    #[error("No to-tag in message")]
    NoToTag,
    #[error("No SDP body in message")]
    NoSdp,
    #[error("Invalid value for key '{key}'")]
    InvalidValue { key: &'static str },
}

/// `replace` options (ng-protocol.md §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replace {
    /// `origin`: the o= address becomes the relay's.
    pub origin: bool,
    /// `session-connection`: accepted for old configs; session c= is always rewritten anyway.
    pub session_connection: bool,
}

/// The `ICE` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IceMode {
    /// Absent or unrecognised: leave ICE attributes as they are.
    #[default]
    Default,
    /// `remove`: strip every ICE attribute.
    Remove,
    /// `force` and friends: this relay has no ICE agent, treated like `Default`.
    Force,
}

/// Address family named in `received-from` / `address-family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    Ip4,
    Ip6,
}

impl AddressFamily {
    /// The family of `address`.
    #[must_use]
    pub fn of(address: IpAddr) -> Self {
        if address.is_ipv4() {
            AddressFamily::Ip4
        } else {
            AddressFamily::Ip6
        }
    }

    /// The token a client writes (`IP4`, `IP6`, as Kamailio's module does).
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            AddressFamily::Ip4 => "IP4",
            AddressFamily::Ip6 => "IP6",
        }
    }
}

/// What `offer` and `answer` carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferAnswer<'a> {
    pub call_id: Cow<'a, str>,
    /// Tag of the party that sent the offer (also in `answer`, ng-protocol.md §2).
    pub from_tag: Cow<'a, str>,
    pub to_tag: Option<Cow<'a, str>>,
    pub via_branch: Option<Cow<'a, str>>,
    /// Names the party sending this message.
    pub label: Option<Cow<'a, str>>,
    /// The SDP body, raw bytes as received.
    pub sdp: Cow<'a, [u8]>,
    pub replace: Replace,
    pub ice: IceMode,
    /// Logical interfaces `[sender side, recipient side]`.
    pub direction: Vec<String>,
    /// Source of the SIP message, used with `SIP-source-address`.
    pub received_from: Option<(AddressFamily, IpAddr)>,
    /// Flag `trust-address`: the SDP address is the media endpoint.
    pub trust_address: bool,
    /// Flag `SIP-source-address`: endpoint = `received-from` address with the SDP port.
    pub sip_source_address: bool,
    pub transport_protocol: Option<String>,
    /// `delete delay` (seconds) for this call.
    pub delete_delay: Option<u32>,
    /// Every other flag, normalised to hyphens; unknown ones are kept, never an error.
    pub flags: Vec<String>,
}

/// What `delete` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete<'a> {
    pub call_id: Cow<'a, str>,
    pub from_tag: Option<Cow<'a, str>>,
    pub to_tag: Option<Cow<'a, str>>,
    pub via_branch: Option<Cow<'a, str>>,
    pub delete_delay: Option<u32>,
    /// Flag `fatal`: an unknown call is an error instead of `ok` + warning.
    pub fatal: bool,
    /// Flag `fast`: omit statistics from the reply.
    pub fast: bool,
    /// Flag `to-tag`: honour the `to-tag` key (otherwise ignored by delete since mr13.1).
    pub honour_to_tag: bool,
}

impl<'a> Delete<'a> {
    /// A plain delete of the whole call: no tags, no delay, no flags (what a proxy sends
    /// on BYE or a failed call).
    pub fn call(call_id: impl Into<Cow<'a, str>>) -> Self {
        Delete {
            call_id: call_id.into(),
            from_tag: None,
            to_tag: None,
            via_branch: None,
            delete_delay: None,
            fatal: false,
            fast: false,
            honour_to_tag: false,
        }
    }
}

/// What `query` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pub call_id: Cow<'a, str>,
    pub from_tag: Option<Cow<'a, str>>,
    pub to_tag: Option<Cow<'a, str>>,
}

/// A parsed ng request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NgCommand<'a> {
    Ping,
    Offer(OfferAnswer<'a>),
    Answer(OfferAnswer<'a>),
    Delete(Delete<'a>),
    Query(Query<'a>),
    /// `list`: call-ids, at most `limit` (default 32).
    List {
        limit: usize,
    },
    Statistics,
}

/// Default `list` limit: what fits one UDP datagram (ng-protocol.md §1).
pub const DEFAULT_LIST_LIMIT: usize = 32;

/// Commands rtpengine knows that this relay does not implement; they get a clear error
/// instead of `Unrecognized command`.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "start recording",
    "stop recording",
    "pause recording",
    "start forwarding",
    "stop forwarding",
    "block DTMF",
    "unblock DTMF",
    "block media",
    "unblock media",
    "silence media",
    "unsilence media",
    "play media",
    "stop media",
    "play DTMF",
    "publish",
    "subscribe request",
    "subscribe answer",
    "unsubscribe",
    "connect",
    "create",
    "create answer",
    "mesh",
    "inject start",
    "inject stop",
    "transform",
    "cli",
];

/// Parses an ng payload (the part after the cookie) into a command.
///
/// # Errors
/// [`NgError`]; its `Display` is the `error-reason` to send back.
pub fn parse_request(payload: &[u8]) -> Result<NgCommand<'_>, NgError> {
    match payload.first() {
        None => Err(NgError::EmptyPayload),
        Some(b'd') => {
            let value = bencode::decode(payload).map_err(NgError::Bencode)?;
            parse_command(value)
        }
        Some(b'{') => Err(NgError::JsonNotSupported),
        Some(_) => Err(NgError::UnknownFormat),
    }
}

/// Builds a command from an already decoded dictionary.
///
/// # Errors
/// [`NgError`] for a missing command, an unknown command or a missing required key.
pub fn parse_command(value: Value<'_>) -> Result<NgCommand<'_>, NgError> {
    let Value::Dict(entries) = value else {
        return Err(NgError::NotADictionary);
    };
    let mut keys = Keys::default();
    for (key, value) in entries {
        keys.absorb(&key, value)?;
    }
    let command = keys.command.take().ok_or(NgError::NoCommand)?;
    match command.as_ref() {
        "ping" => Ok(NgCommand::Ping),
        "offer" => Ok(NgCommand::Offer(keys.offer_answer(false)?)),
        "answer" => Ok(NgCommand::Answer(keys.offer_answer(true)?)),
        "delete" => {
            let call_id = keys.call_id.take().ok_or(NgError::NoCallId)?;
            let fatal = keys.take_flag("fatal");
            let fast = keys.take_flag("fast");
            let honour_to_tag = keys.take_flag("to-tag");
            Ok(NgCommand::Delete(Delete {
                call_id,
                from_tag: keys.from_tag,
                to_tag: keys.to_tag,
                via_branch: keys.via_branch,
                delete_delay: keys.delete_delay,
                fatal,
                fast,
                honour_to_tag,
            }))
        }
        "query" => Ok(NgCommand::Query(Query {
            call_id: keys.call_id.ok_or(NgError::NoCallId)?,
            from_tag: keys.from_tag,
            to_tag: keys.to_tag,
        })),
        "list" => Ok(NgCommand::List {
            limit: keys.limit.unwrap_or(DEFAULT_LIST_LIMIT),
        }),
        "statistics" => Ok(NgCommand::Statistics),
        other if KNOWN_UNSUPPORTED.contains(&other) => {
            Err(NgError::UnsupportedCommand(other.to_owned()))
        }
        _ => Err(NgError::UnrecognizedCommand),
    }
}

// ----- client side: a typed command back into its request dictionary -----

impl NgCommand<'_> {
    /// The `command` value, e.g. `offer`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            NgCommand::Ping => "ping",
            NgCommand::Offer(_) => "offer",
            NgCommand::Answer(_) => "answer",
            NgCommand::Delete(_) => "delete",
            NgCommand::Query(_) => "query",
            NgCommand::List { .. } => "list",
            NgCommand::Statistics => "statistics",
        }
    }

    /// The request dictionary a client sends (the payload after the cookie): the inverse of
    /// [`parse_command`], which reads it back to an equal command. Strings and the SDP are
    /// borrowed, not copied; optional keys are written only when set, flags as a list.
    #[must_use]
    pub fn to_value(&self) -> Value<'_> {
        let mut request = Request::new(self.name());
        match self {
            NgCommand::Ping | NgCommand::Statistics => {}
            NgCommand::Offer(exchange) | NgCommand::Answer(exchange) => {
                request.offer_answer(exchange);
            }
            NgCommand::Delete(delete) => {
                request.text("call-id", &delete.call_id);
                request.optional("from-tag", delete.from_tag.as_deref());
                request.optional("to-tag", delete.to_tag.as_deref());
                request.optional("via-branch", delete.via_branch.as_deref());
                if let Some(delay) = delete.delete_delay {
                    request.entry("delete-delay", Value::Int(i64::from(delay)));
                }
                let flags = [
                    (delete.fatal, "fatal"),
                    (delete.fast, "fast"),
                    (delete.honour_to_tag, "to-tag"),
                ];
                request.flags(flags.iter().filter(|(set, _)| *set).map(|(_, flag)| *flag));
            }
            NgCommand::Query(query) => {
                request.text("call-id", &query.call_id);
                request.optional("from-tag", query.from_tag.as_deref());
                request.optional("to-tag", query.to_tag.as_deref());
            }
            NgCommand::List { limit } => {
                request.entry(
                    "limit",
                    Value::Int(i64::try_from(*limit).unwrap_or(i64::MAX)),
                );
            }
        }
        Value::Dict(request.entries)
    }
}

/// A request dictionary being built; values borrow from the command.
struct Request<'a> {
    entries: Vec<(Cow<'static, [u8]>, Value<'a>)>,
}

fn text_value(text: &str) -> Value<'_> {
    Value::bytes(text.as_bytes())
}

impl<'a> Request<'a> {
    fn new(command: &'static str) -> Self {
        let mut request = Request {
            entries: Vec::with_capacity(12),
        };
        request.entry("command", Value::bytes(command.as_bytes()));
        request
    }

    fn entry(&mut self, key: &'static str, value: Value<'a>) {
        self.entries.push((Cow::Borrowed(key.as_bytes()), value));
    }

    fn text(&mut self, key: &'static str, text: &'a str) {
        self.entry(key, text_value(text));
    }

    fn optional(&mut self, key: &'static str, text: Option<&'a str>) {
        if let Some(text) = text {
            self.text(key, text);
        }
    }

    fn list(&mut self, key: &'static str, items: impl Iterator<Item = &'a str>) {
        let items: Vec<Value<'a>> = items.map(text_value).collect();
        if !items.is_empty() {
            self.entry(key, Value::List(items));
        }
    }

    fn flags(&mut self, flags: impl Iterator<Item = &'a str>) {
        self.list("flags", flags);
    }

    fn offer_answer(&mut self, exchange: &'a OfferAnswer<'_>) {
        self.text("call-id", &exchange.call_id);
        self.text("from-tag", &exchange.from_tag);
        self.optional("to-tag", exchange.to_tag.as_deref());
        self.optional("via-branch", exchange.via_branch.as_deref());
        self.optional("label", exchange.label.as_deref());
        self.entry("sdp", Value::bytes(&exchange.sdp));
        let replace = [
            (exchange.replace.origin, "origin"),
            (exchange.replace.session_connection, "session-connection"),
        ];
        self.list(
            "replace",
            replace
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, option)| option),
        );
        match exchange.ice {
            IceMode::Default => {}
            IceMode::Remove => self.text("ICE", "remove"),
            IceMode::Force => self.text("ICE", "force"),
        }
        self.list("direction", exchange.direction.iter().map(String::as_str));
        if let Some((family, address)) = exchange.received_from {
            self.entry(
                "received-from",
                Value::List(vec![
                    text_value(family.token()),
                    Value::string(address.to_string()),
                ]),
            );
        }
        self.optional("transport-protocol", exchange.transport_protocol.as_deref());
        if let Some(delay) = exchange.delete_delay {
            self.entry("delete-delay", Value::Int(i64::from(delay)));
        }
        let named = [
            (exchange.trust_address, "trust-address"),
            (exchange.sip_source_address, "SIP-source-address"),
        ];
        self.flags(
            named
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, flag)| flag)
                .chain(exchange.flags.iter().map(String::as_str)),
        );
    }
}

/// The keys of one request, gathered before the command decides which it needs.
#[derive(Default)]
struct Keys<'a> {
    command: Option<Cow<'a, str>>,
    call_id: Option<Cow<'a, str>>,
    from_tag: Option<Cow<'a, str>>,
    to_tag: Option<Cow<'a, str>>,
    via_branch: Option<Cow<'a, str>>,
    label: Option<Cow<'a, str>>,
    sdp: Option<Cow<'a, [u8]>>,
    replace: Replace,
    ice: IceMode,
    direction: Vec<String>,
    received_from: Option<(AddressFamily, IpAddr)>,
    transport_protocol: Option<String>,
    delete_delay: Option<u32>,
    limit: Option<usize>,
    flags: Vec<String>,
}

fn into_str(bytes: Cow<'_, [u8]>) -> Option<Cow<'_, str>> {
    match bytes {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
    }
}

fn take_string<'a>(value: Value<'a>, key: &'static str) -> Result<Cow<'a, str>, NgError> {
    match value {
        Value::Bytes(b) => into_str(b).ok_or(NgError::InvalidValue { key }),
        Value::Int(n) => Ok(Cow::Owned(n.to_string())),
        _ => Err(NgError::InvalidValue { key }),
    }
}

/// A list of strings, or one string of space-separated words.
fn string_list(value: &Value<'_>, key: &'static str) -> Result<Vec<String>, NgError> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or(NgError::InvalidValue { key })
            })
            .collect(),
        Value::Bytes(_) => Ok(value
            .as_str()
            .ok_or(NgError::InvalidValue { key })?
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect()),
        _ => Err(NgError::InvalidValue { key }),
    }
}

fn parse_delay(value: &Value<'_>) -> Result<u32, NgError> {
    value
        .as_int()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(NgError::InvalidValue {
            key: "delete-delay",
        })
}

fn parse_family(text: &str) -> Option<AddressFamily> {
    match text {
        "IP4" | "IPv4" => Some(AddressFamily::Ip4),
        "IP6" | "IPv6" => Some(AddressFamily::Ip6),
        _ => None,
    }
}

fn parse_received_from(value: &Value<'_>) -> Result<(AddressFamily, IpAddr), NgError> {
    const KEY: &str = "received-from";
    let invalid = NgError::InvalidValue { key: KEY };
    let items = value.as_list().ok_or(invalid.clone())?;
    let [family, address] = items else {
        return Err(invalid);
    };
    let family = family
        .as_str()
        .and_then(parse_family)
        .ok_or(invalid.clone())?;
    let address: IpAddr = address
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or(invalid.clone())?;
    if address.is_ipv4() != (family == AddressFamily::Ip4) {
        return Err(invalid);
    }
    Ok((family, address))
}

/// Keys come with spaces or hyphens (and `rtpp_flags` with an underscore); one spelling.
fn normalise_key(key: &[u8]) -> Option<String> {
    let key = std::str::from_utf8(key).ok()?;
    Some(key.replace([' ', '_'], "-"))
}

impl<'a> Keys<'a> {
    fn absorb(&mut self, key: &[u8], value: Value<'a>) -> Result<(), NgError> {
        let Some(key) = normalise_key(key) else {
            return Ok(());
        };
        match key.as_str() {
            "command" => self.command = Some(take_string(value, "command")?),
            "call-id" => self.call_id = Some(take_string(value, "call-id")?),
            "from-tag" => self.from_tag = Some(take_string(value, "from-tag")?),
            "to-tag" => self.to_tag = Some(take_string(value, "to-tag")?),
            "via-branch" => self.via_branch = Some(take_string(value, "via-branch")?),
            "label" => self.label = Some(take_string(value, "label")?),
            "sdp" => match value {
                Value::Bytes(b) => self.sdp = Some(b),
                _ => return Err(NgError::InvalidValue { key: "sdp" }),
            },
            "replace" => {
                for item in string_list(&value, "replace")? {
                    self.replace_option(&item);
                }
            }
            "ICE" => {
                self.ice = match value.as_str() {
                    Some("remove") => IceMode::Remove,
                    Some("force" | "force-relay" | "optional") => IceMode::Force,
                    _ => IceMode::Default,
                }
            }
            "direction" => self.direction = string_list(&value, "direction")?,
            "received-from" => self.received_from = Some(parse_received_from(&value)?),
            "transport-protocol" => {
                self.transport_protocol = value.as_str().map(str::to_owned);
            }
            "delete-delay" => self.delete_delay = Some(parse_delay(&value)?),
            "limit" => {
                self.limit = Some(
                    value
                        .as_int()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or(NgError::InvalidValue { key: "limit" })?,
                );
            }
            "flags" => {
                for flag in string_list(&value, "flags")? {
                    self.flag(&flag)?;
                }
            }
            "rtpp-flags" => {
                let text = value
                    .as_str()
                    .ok_or(NgError::InvalidValue { key: "rtpp-flags" })?
                    .to_owned();
                self.rtpp_flags(&text)?;
            }
            // Unknown keys (supports, sip-message-type, metadata, …) are ignored by design.
            _ => {}
        }
        Ok(())
    }

    fn replace_option(&mut self, option: &str) {
        match option.replace(' ', "-").as_str() {
            "origin" => self.replace.origin = true,
            "session-connection" => self.replace.session_connection = true,
            _ => {}
        }
    }

    fn flag(&mut self, flag: &str) -> Result<(), NgError> {
        let flag = flag.replace(' ', "-");
        if let Some(option) = flag.strip_prefix("replace-") {
            self.replace_option(option);
        } else if flag.is_empty() {
            // an empty entry (double space in a string) carries nothing
        } else {
            self.flags.push(flag);
        }
        Ok(())
    }

    /// Kamailio's flag string form: `replace-origin ICE=remove label=caller …`.
    fn rtpp_flags(&mut self, text: &str) -> Result<(), NgError> {
        for token in text.split_ascii_whitespace() {
            let Some((key, value)) = token.split_once('=') else {
                self.flag(token)?;
                continue;
            };
            let owned = |v: &str| Cow::Owned(v.to_owned());
            match key.replace('_', "-").as_str() {
                "replace" => self.replace_option(value),
                "ICE" => self.absorb(b"ICE", Value::string(value))?,
                "label" => self.label = Some(owned(value)),
                "via-branch" => self.via_branch = Some(owned(value)),
                "from-tag" => self.from_tag = Some(owned(value)),
                "to-tag" => self.to_tag = Some(owned(value)),
                "call-id" => self.call_id = Some(owned(value)),
                "direction" => self.direction.push(value.to_owned()),
                "delete-delay" => self.delete_delay = Some(parse_delay(&Value::string(value))?),
                "transport-protocol" => self.transport_protocol = Some(value.to_owned()),
                "received-from" => {
                    let address: IpAddr = value.parse().map_err(|_| NgError::InvalidValue {
                        key: "received-from",
                    })?;
                    let family = if address.is_ipv4() {
                        AddressFamily::Ip4
                    } else {
                        AddressFamily::Ip6
                    };
                    self.received_from = Some((family, address));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn take_flag(&mut self, name: &str) -> bool {
        let before = self.flags.len();
        self.flags.retain(|f| !f.eq_ignore_ascii_case(name));
        self.flags.len() != before
    }

    fn offer_answer(mut self, is_answer: bool) -> Result<OfferAnswer<'a>, NgError> {
        let sdp = self.sdp.take().ok_or(NgError::NoSdp)?;
        let call_id = self.call_id.take().ok_or(NgError::NoCallId)?;
        let from_tag = self.from_tag.take().ok_or(NgError::NoFromTag)?;
        if is_answer && self.to_tag.is_none() {
            return Err(NgError::NoToTag);
        }
        let trust_address = self.take_flag("trust-address");
        let sip_source_address = self.take_flag("SIP-source-address");
        Ok(OfferAnswer {
            call_id,
            from_tag,
            to_tag: self.to_tag,
            via_branch: self.via_branch,
            label: self.label,
            sdp,
            replace: self.replace,
            ice: self.ice,
            direction: self.direction,
            received_from: self.received_from,
            trust_address,
            sip_source_address,
            transport_protocol: self.transport_protocol,
            delete_delay: self.delete_delay,
            flags: self.flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ping() {
        assert_eq!(parse_request(b"d7:command4:pinge"), Ok(NgCommand::Ping));
    }

    #[test]
    fn parses_stock_kamailio_nat_offer() {
        let payload = b"d8:supportsl10:load limite3:sdp3:v=07:replacel6:origin18:session-connectione13:received-froml3:IP411:203.0.113.5e7:call-id3:abc8:from-tag2:ft7:command5:offer16:sip-message-type11:sip_request5:flagsl18:SIP-source-addressee";
        let NgCommand::Offer(offer) = parse_request(payload).unwrap() else {
            panic!("expected an offer");
        };
        assert_eq!(offer.call_id, "abc");
        assert_eq!(offer.from_tag, "ft");
        assert!(offer.replace.origin && offer.replace.session_connection);
        assert_eq!(
            offer.received_from,
            Some((AddressFamily::Ip4, "203.0.113.5".parse().unwrap()))
        );
        assert!(offer.sip_source_address);
        assert!(!offer.trust_address);
        assert!(offer.flags.is_empty());
        assert_eq!(offer.sdp.as_ref(), b"v=0");
    }

    #[test]
    fn flags_as_string_and_keys_with_spaces() {
        let payload = b"d7:command5:offer7:call id1:c8:from tag1:f3:sdp3:v=05:flags28:trust-address  port-latching12:delete delay2:103:ICE6:removee";
        let NgCommand::Offer(offer) = parse_request(payload).unwrap() else {
            panic!("expected an offer");
        };
        assert!(offer.trust_address);
        assert_eq!(offer.flags, vec!["port-latching".to_owned()]);
        assert_eq!(offer.delete_delay, Some(10));
        assert_eq!(offer.ice, IceMode::Remove);
    }

    #[test]
    fn rtpp_flags_string_becomes_keys() {
        let payload = b"d7:command5:offer7:call-id1:c8:from-tag1:f3:sdp3:v=010:rtpp_flags64:replace-origin ICE=remove label=caller direction=internal trusty";
        let mut payload = payload.to_vec();
        payload.push(b'e');
        let NgCommand::Offer(offer) = parse_request(&payload).unwrap() else {
            panic!("expected an offer");
        };
        assert!(offer.replace.origin);
        assert_eq!(offer.ice, IceMode::Remove);
        assert_eq!(offer.label.as_deref(), Some("caller"));
        assert_eq!(offer.direction, vec!["internal".to_owned()]);
        assert_eq!(offer.flags, vec!["trusty".to_owned()]);
    }

    #[test]
    fn missing_keys_give_rtpengine_reasons() {
        assert_eq!(
            parse_request(b"d7:call-id1:ce").unwrap_err().to_string(),
            "Dictionary contains no key \"command\""
        );
        assert_eq!(
            parse_request(b"d7:command5:offer3:sdp3:v=0e")
                .unwrap_err()
                .to_string(),
            "No call-id in message"
        );
        assert_eq!(
            parse_request(b"d7:command5:offer7:call-id1:ce")
                .unwrap_err()
                .to_string(),
            "No SDP body in message"
        );
        assert_eq!(
            parse_request(b"d7:command5:offer7:call-id1:c3:sdp3:v=0e")
                .unwrap_err()
                .to_string(),
            "No from-tag in message"
        );
        assert_eq!(
            parse_request(b"d7:command6:answer7:call-id1:c8:from-tag1:f3:sdp3:v=0e")
                .unwrap_err()
                .to_string(),
            "No to-tag in message"
        );
        assert_eq!(
            parse_request(b"d7:command5:dancee")
                .unwrap_err()
                .to_string(),
            "Unrecognized command"
        );
        assert_eq!(
            parse_request(b"").unwrap_err().to_string(),
            "Invalid data (no payload)"
        );
        assert_eq!(
            parse_request(b"xyz").unwrap_err().to_string(),
            "Invalid NG data format"
        );
        assert_eq!(
            parse_request(b"d7:command").unwrap_err().to_string(),
            "Could not decode bencode dictionary"
        );
        assert!(matches!(
            parse_request(b"d7:command15:start recording7:call-id1:ce"),
            Err(NgError::UnsupportedCommand(_))
        ));
    }

    #[test]
    fn delete_flags_and_list_limit() {
        let NgCommand::Delete(delete) = parse_request(
            b"d7:command6:delete7:call-id1:c5:flagsl5:fatal4:faste12:delete-delayi0ee",
        )
        .unwrap() else {
            panic!("expected a delete");
        };
        assert!(delete.fatal && delete.fast && !delete.honour_to_tag);
        assert_eq!(delete.delete_delay, Some(0));
        assert_eq!(
            parse_request(b"d7:command4:list5:limit1:5e"),
            Ok(NgCommand::List { limit: 5 })
        );
        assert_eq!(
            parse_request(b"d7:command4:liste"),
            Ok(NgCommand::List {
                limit: DEFAULT_LIST_LIMIT
            })
        );
    }

    #[test]
    fn invalid_received_from_is_a_typed_error() {
        let err = parse_request(
            b"d7:command5:offer7:call-id1:c8:from-tag1:f3:sdp3:v=013:received-froml3:IP44:nopeee",
        )
        .unwrap_err();
        assert_eq!(
            err,
            NgError::InvalidValue {
                key: "received-from"
            }
        );
    }

    /// The offer Kamailio's `rtpengine_manage("replace-origin replace-session-connection
    /// ICE=remove trust-address")` sends, as the proxy sends it.
    fn kamailio_offer() -> NgCommand<'static> {
        NgCommand::Offer(OfferAnswer {
            call_id: "c1".into(),
            from_tag: "ft".into(),
            to_tag: None,
            via_branch: Some("z9hG4bK1".into()),
            label: Some("caller".into()),
            sdp: Cow::Borrowed(b"v=0\r\n"),
            replace: Replace {
                origin: true,
                session_connection: true,
            },
            ice: IceMode::Remove,
            direction: Vec::new(),
            received_from: Some((AddressFamily::Ip4, "192.0.2.7".parse().unwrap())),
            trust_address: true,
            sip_source_address: false,
            transport_protocol: None,
            delete_delay: None,
            flags: Vec::new(),
        })
    }

    #[test]
    fn encodes_the_kamailio_offer_byte_for_byte() {
        let offer = kamailio_offer();
        assert_eq!(
            String::from_utf8(offer.to_value().encode()).unwrap(),
            "d3:ICE6:remove7:call-id2:c17:command5:offer5:flagsl13:trust-addresse\
             8:from-tag2:ft5:label6:caller13:received-froml3:IP49:192.0.2.7e\
             7:replacel6:origin18:session-connectione3:sdp5:v=0\r\n10:via-branch8:z9hG4bK1e"
        );
        assert_eq!(parse_request(&offer.to_value().encode()), Ok(offer));
    }

    #[test]
    fn encodes_the_small_commands() {
        let encoded =
            |command: NgCommand<'_>| String::from_utf8(command.to_value().encode()).unwrap();
        assert_eq!(encoded(NgCommand::Ping), "d7:command4:pinge");
        assert_eq!(encoded(NgCommand::Statistics), "d7:command10:statisticse");
        assert_eq!(
            encoded(NgCommand::List { limit: 32 }),
            "d7:command4:list5:limiti32ee"
        );
        assert_eq!(
            encoded(NgCommand::Delete(Delete::call("c1"))),
            "d7:call-id2:c17:command6:deletee"
        );
        assert_eq!(
            encoded(NgCommand::Delete(Delete {
                call_id: "c1".into(),
                from_tag: Some("f".into()),
                to_tag: Some("t".into()),
                via_branch: None,
                delete_delay: Some(0),
                fatal: true,
                fast: false,
                honour_to_tag: true,
            })),
            "d7:call-id2:c17:command6:delete12:delete-delayi0e5:flagsl5:fatal6:to-tage\
             8:from-tag1:f6:to-tag1:te"
        );
        assert_eq!(
            encoded(NgCommand::Query(Query {
                call_id: "c1".into(),
                from_tag: None,
                to_tag: None,
            })),
            "d7:call-id2:c17:command5:querye"
        );
    }

    #[test]
    fn address_family_of_and_token() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(AddressFamily::of(v4), AddressFamily::Ip4);
        assert_eq!(AddressFamily::of(v6), AddressFamily::Ip6);
        assert_eq!(
            parse_family(AddressFamily::Ip4.token()),
            Some(AddressFamily::Ip4)
        );
        assert_eq!(
            parse_family(AddressFamily::Ip6.token()),
            Some(AddressFamily::Ip6)
        );
    }

    fn text() -> impl Strategy<Value = Cow<'static, str>> {
        any::<String>().prop_map(Cow::Owned)
    }

    fn optional_text() -> impl Strategy<Value = Option<Cow<'static, str>>> {
        proptest::option::of(text())
    }

    /// Flags a relay keeps as they are: not one of those it turns into a field, no
    /// `replace-` prefix, no spaces.
    fn plain_flag() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9]{0,8}(-[a-zA-Z0-9]{1,6})?".prop_filter("flag with a meaning", |flag| {
            !flag.starts_with("replace-")
                && !flag.eq_ignore_ascii_case("trust-address")
                && !flag.eq_ignore_ascii_case("SIP-source-address")
        })
    }

    fn received_from() -> impl Strategy<Value = Option<(AddressFamily, IpAddr)>> {
        proptest::option::of(
            any::<IpAddr>().prop_map(|address| (AddressFamily::of(address), address)),
        )
    }

    fn offer_answer(is_answer: bool) -> impl Strategy<Value = OfferAnswer<'static>> {
        let to_tag = if is_answer {
            text().prop_map(Some).boxed()
        } else {
            optional_text().boxed()
        };
        (
            (text(), text(), to_tag, optional_text(), optional_text()),
            proptest::collection::vec(any::<u8>(), 0..64),
            (
                any::<bool>(),
                any::<bool>(),
                0_u8..3,
                proptest::collection::vec(any::<String>(), 0..3),
            ),
            (
                received_from(),
                any::<bool>(),
                any::<bool>(),
                proptest::option::of(any::<String>()),
            ),
            (
                proptest::option::of(any::<u32>()),
                proptest::collection::vec(plain_flag(), 0..4),
            ),
        )
            .prop_map(
                |(
                    (call_id, from_tag, to_tag, via_branch, label),
                    sdp,
                    (origin, session_connection, ice, direction),
                    (received_from, trust_address, sip_source_address, transport_protocol),
                    (delete_delay, flags),
                )| OfferAnswer {
                    call_id,
                    from_tag,
                    to_tag,
                    via_branch,
                    label,
                    sdp: Cow::Owned(sdp),
                    replace: Replace {
                        origin,
                        session_connection,
                    },
                    ice: [IceMode::Default, IceMode::Remove, IceMode::Force][usize::from(ice)],
                    direction,
                    received_from,
                    trust_address,
                    sip_source_address,
                    transport_protocol,
                    delete_delay,
                    flags,
                },
            )
    }

    fn command() -> impl Strategy<Value = NgCommand<'static>> {
        prop_oneof![
            Just(NgCommand::Ping),
            Just(NgCommand::Statistics),
            (0_usize..1_000_000).prop_map(|limit| NgCommand::List { limit }),
            offer_answer(false).prop_map(NgCommand::Offer),
            offer_answer(true).prop_map(NgCommand::Answer),
            (
                text(),
                (optional_text(), optional_text(), optional_text()),
                proptest::option::of(any::<u32>()),
                (any::<bool>(), any::<bool>(), any::<bool>()),
            )
                .prop_map(
                    |(
                        call_id,
                        (from_tag, to_tag, via_branch),
                        delete_delay,
                        (fatal, fast, honour_to_tag),
                    )| {
                        NgCommand::Delete(Delete {
                            call_id,
                            from_tag,
                            to_tag,
                            via_branch,
                            delete_delay,
                            fatal,
                            fast,
                            honour_to_tag,
                        })
                    }
                ),
            (text(), optional_text(), optional_text()).prop_map(|(call_id, from_tag, to_tag)| {
                NgCommand::Query(Query {
                    call_id,
                    from_tag,
                    to_tag,
                })
            }),
        ]
    }

    proptest! {
        /// What a client encodes, a relay parses back to the same command.
        #[test]
        fn every_command_round_trips_through_its_request(command in command()) {
            let encoded = command.to_value().encode();
            prop_assert_eq!(parse_request(&encoded), Ok(command));
        }
    }
}
