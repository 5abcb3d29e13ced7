//! Typed ng replies and their bencode shapes (ng-protocol.md §2).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::bencode::{self, DecodeError, Value};
use crate::command::NgCommand;
use crate::message::frame_reply;

/// Packet, byte and error counters of one stream or a total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: Counters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.errors += other.errors;
    }

    fn to_value(self) -> Value<'static> {
        dict(vec![
            ("packets", int(self.packets)),
            ("bytes", int(self.bytes)),
            ("errors", int(self.errors)),
        ])
    }
}

/// One relay socket (RTP or RTCP) facing one party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    pub local_address: IpAddr,
    pub local_port: u16,
    /// Where packets go: the latched source, else the SDP address.
    pub endpoint: Option<SocketAddr>,
    /// The address the party's SDP advertised.
    pub advertised_endpoint: Option<SocketAddr>,
    /// Unix seconds of the last packet received, 0 if none.
    pub last_packet: u64,
    pub is_rtcp: bool,
    /// Relayed in the kernel (rtpengine's `kernelized` stream flag).
    pub kernelized: bool,
    /// Received on this socket.
    pub stats: Counters,
}

/// One m= section of one party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaReport {
    /// From 1, in SDP order.
    pub index: u32,
    pub media_type: String,
    pub protocol: String,
    pub streams: Vec<StreamReport>,
}

/// One party (monologue) of a call, keyed by its SIP tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    pub tag: String,
    pub label: Option<String>,
    pub via_branch: Option<String>,
    /// Unix seconds.
    pub created: u64,
    pub medias: Vec<MediaReport>,
}

/// What `query` (and `delete` unless `fast`) reports about a call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallReport {
    /// Unix microseconds.
    pub created_us: u64,
    /// Unix seconds of the last offer/answer.
    pub last_signal: u64,
    pub tags: Vec<TagReport>,
    pub totals_rtp: Counters,
    pub totals_rtcp: Counters,
}

/// What `statistics` reports (a subset of `rtpengine-ctl list jsonstats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statistics {
    pub sessions_own: u64,
    pub sessions_total: u64,
    pub uptime_seconds: u64,
    pub managed_sessions: u64,
    pub timeout_sessions: u64,
    pub deleted_sessions: u64,
    pub rtp: Counters,
    pub rtcp: Counters,
}

/// What the relay answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `ping` → `result: pong`.
    Pong,
    /// `result: error` with `error-reason` and no other key.
    Error(String),
    /// `result: ok`, optionally with a `warning`, plus the body's keys.
    Ok {
        warning: Option<String>,
        body: ReplyBody,
    },
}

/// The keys an `ok` reply carries besides `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    Empty,
    /// `offer`/`answer`: the rewritten SDP.
    Sdp(Vec<u8>),
    /// `query`/`delete`.
    Call(Box<CallReport>),
    /// `list`.
    Calls(Vec<String>),
    Statistics(Statistics),
}

fn int(n: u64) -> Value<'static> {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn dict(entries: Vec<(&'static str, Value<'static>)>) -> Value<'static> {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_bytes()), v))
            .collect(),
    )
}

fn endpoint_value(endpoint: SocketAddr) -> Value<'static> {
    let family = if endpoint.is_ipv4() { "IPv4" } else { "IPv6" };
    dict(vec![
        ("family", Value::string(family)),
        ("address", Value::string(endpoint.ip().to_string())),
        ("port", int(u64::from(endpoint.port()))),
    ])
}

impl StreamReport {
    fn to_value(&self) -> Value<'static> {
        let family = if self.local_address.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        let mut entries = vec![
            ("local port", int(u64::from(self.local_port))),
            (
                "local address",
                Value::string(self.local_address.to_string()),
            ),
            ("family", Value::string(family)),
            ("last packet", int(self.last_packet)),
            ("flags", {
                let mut flags = vec![Value::string(if self.is_rtcp { "RTCP" } else { "RTP" })];
                if self.kernelized {
                    flags.push(Value::string("kernelized"));
                }
                Value::List(flags)
            }),
            ("stats", self.stats.to_value()),
        ];
        if let Some(endpoint) = self.endpoint {
            entries.push(("endpoint", endpoint_value(endpoint)));
        }
        if let Some(endpoint) = self.advertised_endpoint {
            entries.push(("advertised endpoint", endpoint_value(endpoint)));
        }
        dict(entries)
    }
}

impl CallReport {
    /// The dictionary keys of a `query` reply (without `result`).
    #[must_use]
    pub fn entries(&self) -> Vec<(&'static str, Value<'static>)> {
        let tags = self
            .tags
            .iter()
            .map(|tag| {
                let medias = tag
                    .medias
                    .iter()
                    .map(|media| {
                        dict(vec![
                            ("index", int(u64::from(media.index))),
                            ("type", Value::string(media.media_type.clone())),
                            ("protocol", Value::string(media.protocol.clone())),
                            (
                                "streams",
                                Value::List(
                                    media.streams.iter().map(StreamReport::to_value).collect(),
                                ),
                            ),
                        ])
                    })
                    .collect();
                let mut entries = vec![
                    ("tag", Value::string(tag.tag.clone())),
                    ("created", int(tag.created)),
                    ("medias", Value::List(medias)),
                ];
                if let Some(label) = &tag.label {
                    entries.push(("label", Value::string(label.clone())));
                }
                if let Some(branch) = &tag.via_branch {
                    entries.push(("via-branch", Value::string(branch.clone())));
                }
                (Cow::Owned(tag.tag.clone().into_bytes()), dict(entries))
            })
            .collect();
        vec![
            ("created", int(self.created_us / 1_000_000)),
            ("created_us", int(self.created_us % 1_000_000)),
            ("created_ts", int(self.created_us)),
            ("last signal", int(self.last_signal)),
            (
                "totals",
                dict(vec![
                    ("RTP", self.totals_rtp.to_value()),
                    ("RTCP", self.totals_rtcp.to_value()),
                ]),
            ),
            ("tags", Value::Dict(tags)),
        ]
    }
}

impl Statistics {
    fn to_value(self) -> Value<'static> {
        dict(vec![
            (
                "currentstatistics",
                dict(vec![
                    ("sessionsown", int(self.sessions_own)),
                    ("sessionstotal", int(self.sessions_total)),
                ]),
            ),
            (
                "totalstatistics",
                dict(vec![
                    // rtpengine prints uptime as a string
                    ("uptime", Value::string(self.uptime_seconds.to_string())),
                    ("managedsessions", int(self.managed_sessions)),
                    ("timeoutsessions", int(self.timeout_sessions)),
                    ("deletedsessions", int(self.deleted_sessions)),
                    ("rtp", self.rtp.to_value()),
                    ("rtcp", self.rtcp.to_value()),
                ]),
            ),
        ])
    }
}

impl Reply {
    /// A `result: error` reply from anything displayable (e.g. an [`crate::NgError`]).
    #[must_use]
    pub fn error(reason: impl std::fmt::Display) -> Self {
        Reply::Error(reason.to_string())
    }

    /// A plain `result: ok`.
    #[must_use]
    pub fn ok(body: ReplyBody) -> Self {
        Reply::Ok {
            warning: None,
            body,
        }
    }

    /// The reply dictionary.
    #[must_use]
    pub fn to_value(&self) -> Value<'static> {
        match self {
            Reply::Pong => dict(vec![("result", Value::string("pong"))]),
            Reply::Error(reason) => dict(vec![
                ("result", Value::string("error")),
                ("error-reason", Value::string(reason.clone())),
            ]),
            Reply::Ok { warning, body } => {
                let mut entries = vec![("result", Value::string("ok"))];
                if let Some(warning) = warning {
                    entries.push(("warning", Value::string(warning.clone())));
                }
                match body {
                    ReplyBody::Empty => {}
                    ReplyBody::Sdp(sdp) => {
                        entries.push(("sdp", Value::Bytes(Cow::Owned(sdp.clone()))));
                    }
                    ReplyBody::Call(report) => entries.extend(report.entries()),
                    ReplyBody::Calls(calls) => entries.push((
                        "calls",
                        Value::List(calls.iter().map(|c| Value::string(c.clone())).collect()),
                    )),
                    ReplyBody::Statistics(stats) => entries.push(("statistics", stats.to_value())),
                }
                dict(entries)
            }
        }
    }

    /// The reply datagram for `cookie`.
    #[must_use]
    pub fn frame(&self, cookie: &[u8]) -> Vec<u8> {
        frame_reply(cookie, &self.to_value())
    }
}

// ----- client side: a relay's reply read back into the typed form -----

/// Why a client cannot use what a relay answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The payload is not bencode.
    #[error("{0}")]
    Bencode(#[from] DecodeError),
    /// No `result` string (or not a dictionary at all).
    #[error("reply has no result")]
    NoResult,
    /// A `result` other than `ok`, `pong` or `error` (rtpengine's `load limit`, say).
    #[error("result `{0}`")]
    UnexpectedResult(String),
    /// An `ok` without a key the command's reply must carry (the SDP of an offer).
    #[error("{command} reply has no {key}")]
    Missing {
        command: &'static str,
        key: &'static str,
    },
}

fn count(value: Option<&Value<'_>>) -> u64 {
    value
        .and_then(Value::as_int)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

fn text(value: Option<&Value<'_>>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn list<'v, 'a>(value: Option<&'v Value<'a>>) -> &'v [Value<'a>] {
    value.and_then(Value::as_list).unwrap_or_default()
}

fn endpoint_from(value: Option<&Value<'_>>) -> Option<SocketAddr> {
    let value = value?;
    let ip: IpAddr = value.get("address")?.as_str()?.parse().ok()?;
    let port = u16::try_from(value.get("port")?.as_int()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

impl Counters {
    fn from_value(value: Option<&Value<'_>>) -> Counters {
        let field = |key| count(value.and_then(|counters| counters.get(key)));
        Counters {
            packets: field("packets"),
            bytes: field("bytes"),
            errors: field("errors"),
        }
    }
}

impl StreamReport {
    fn from_value(stream: &Value<'_>) -> StreamReport {
        let has_flag = |flag: &str| {
            list(stream.get("flags"))
                .iter()
                .any(|item| item.as_str() == Some(flag))
        };
        StreamReport {
            local_address: stream
                .get("local address")
                .and_then(Value::as_str)
                .and_then(|address| address.parse().ok())
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            local_port: u16::try_from(count(stream.get("local port"))).unwrap_or(0),
            endpoint: endpoint_from(stream.get("endpoint")),
            advertised_endpoint: endpoint_from(stream.get("advertised endpoint")),
            last_packet: count(stream.get("last packet")),
            is_rtcp: has_flag("RTCP"),
            kernelized: has_flag("kernelized"),
            stats: Counters::from_value(stream.get("stats")),
        }
    }
}

impl CallReport {
    /// Reads a `query` (or `delete`) reply, leniently as rtpengine's own replies carry more
    /// keys and sometimes fewer: what is missing reads as zero or empty (a stream without
    /// `local port` as port 0). The inverse of [`CallReport::entries`], tags in wire order.
    #[must_use]
    pub fn from_value(reply: &Value<'_>) -> CallReport {
        let created_us = match reply.get("created_ts") {
            Some(full) => count(Some(full)),
            None => count(reply.get("created"))
                .saturating_mul(1_000_000)
                .saturating_add(count(reply.get("created_us"))),
        };
        let totals = reply.get("totals");
        let tags = match reply.get("tags") {
            Some(Value::Dict(tags)) => tags
                .iter()
                .map(|(key, tag)| TagReport {
                    tag: text(tag.get("tag"))
                        .unwrap_or_else(|| String::from_utf8_lossy(key).into_owned()),
                    label: text(tag.get("label")),
                    via_branch: text(tag.get("via-branch")),
                    created: count(tag.get("created")),
                    medias: list(tag.get("medias"))
                        .iter()
                        .map(|media| MediaReport {
                            index: u32::try_from(count(media.get("index"))).unwrap_or(0),
                            media_type: text(media.get("type")).unwrap_or_default(),
                            protocol: text(media.get("protocol")).unwrap_or_default(),
                            streams: list(media.get("streams"))
                                .iter()
                                .map(StreamReport::from_value)
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            _ => Vec::new(),
        };
        CallReport {
            created_us,
            last_signal: count(reply.get("last signal")),
            tags,
            totals_rtp: Counters::from_value(totals.and_then(|t| t.get("RTP"))),
            totals_rtcp: Counters::from_value(totals.and_then(|t| t.get("RTCP"))),
        }
    }
}

impl Statistics {
    /// Reads the `statistics` dictionary of a reply (the inverse of what the relay writes).
    #[must_use]
    pub fn from_value(statistics: &Value<'_>) -> Statistics {
        let current = statistics.get("currentstatistics");
        let total = statistics.get("totalstatistics");
        let current_count = |key| count(current.and_then(|c| c.get(key)));
        let total_count = |key| count(total.and_then(|t| t.get(key)));
        Statistics {
            sessions_own: current_count("sessionsown"),
            sessions_total: current_count("sessionstotal"),
            uptime_seconds: total_count("uptime"),
            managed_sessions: total_count("managedsessions"),
            timeout_sessions: total_count("timeoutsessions"),
            deleted_sessions: total_count("deletedsessions"),
            rtp: Counters::from_value(total.and_then(|t| t.get("rtp"))),
            rtcp: Counters::from_value(total.and_then(|t| t.get("rtcp"))),
        }
    }
}

impl Reply {
    /// Decodes a reply payload (after the cookie) to `command`: the client-side inverse of
    /// [`Reply::to_value`].
    ///
    /// # Errors
    /// [`ReplyError`] when the payload is not bencode, has no usable `result`, or an `ok`
    /// lacks what `command`'s reply must carry. A `result: error` is no error here but
    /// [`Reply::Error`]: the relay answered, and refused.
    pub fn decode(payload: &[u8], command: &NgCommand<'_>) -> Result<Reply, ReplyError> {
        Reply::from_value(&bencode::decode(payload)?, command)
    }

    /// The `result` of a reply dictionary (and its `warning`), the body left
    /// [`ReplyBody::Empty`]: what a client checks of any reply, whatever it asked.
    ///
    /// # Errors
    /// [`ReplyError::NoResult`], [`ReplyError::UnexpectedResult`].
    pub fn envelope(reply: &Value<'_>) -> Result<Reply, ReplyError> {
        match reply.get("result").and_then(Value::as_str) {
            Some("pong") => Ok(Reply::Pong),
            Some("ok") => Ok(Reply::Ok {
                warning: text(reply.get("warning")),
                body: ReplyBody::Empty,
            }),
            Some("error") => Ok(Reply::Error(
                text(reply.get("error-reason")).unwrap_or_else(|| "no reason given".to_owned()),
            )),
            Some(other) => Err(ReplyError::UnexpectedResult(other.to_owned())),
            None => Err(ReplyError::NoResult),
        }
    }

    /// [`Reply::envelope`] with the body `command`'s `ok` reply carries: the SDP for
    /// `offer`/`answer`, the call report for `query` (and `delete` when it has one), the
    /// Call-IDs for `list`, the counters for `statistics`.
    ///
    /// # Errors
    /// As [`Reply::decode`].
    pub fn from_value(reply: &Value<'_>, command: &NgCommand<'_>) -> Result<Reply, ReplyError> {
        let warning = match Reply::envelope(reply)? {
            Reply::Ok { warning, .. } => warning,
            pong_or_error => return Ok(pong_or_error),
        };
        let body = match command {
            NgCommand::Ping => ReplyBody::Empty,
            NgCommand::Offer(_) | NgCommand::Answer(_) => ReplyBody::Sdp(
                reply
                    .get("sdp")
                    .and_then(Value::as_bytes)
                    .ok_or(ReplyError::Missing {
                        command: command.name(),
                        key: "sdp",
                    })?
                    .to_vec(),
            ),
            NgCommand::Query(_) => ReplyBody::Call(Box::new(CallReport::from_value(reply))),
            NgCommand::Delete(_)
                if reply.get("totals").is_some() || reply.get("tags").is_some() =>
            {
                ReplyBody::Call(Box::new(CallReport::from_value(reply)))
            }
            NgCommand::Delete(_) => ReplyBody::Empty,
            NgCommand::List { .. } => ReplyBody::Calls(
                list(reply.get("calls"))
                    .iter()
                    .filter_map(|call| call.as_str().map(str::to_owned))
                    .collect(),
            ),
            NgCommand::Statistics => ReplyBody::Statistics(
                reply
                    .get("statistics")
                    .map(Statistics::from_value)
                    .unwrap_or_default(),
            ),
        };
        Ok(Reply::Ok { warning, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::decode;
    use crate::command::{Delete, Query};
    use proptest::prelude::*;

    #[test]
    fn error_reply_has_reason_and_nothing_else() {
        let bytes = Reply::error("Unknown call-id").frame(b"c1");
        assert_eq!(
            bytes,
            b"c1 d12:error-reason15:Unknown call-id6:result5:errore"
        );
    }

    #[test]
    fn query_reply_carries_totals_and_tags() {
        let report = CallReport {
            created_us: 1_700_000_000_123_456,
            last_signal: 1_700_000_001,
            tags: vec![TagReport {
                tag: "ft".into(),
                label: Some("caller".into()),
                via_branch: None,
                created: 1_700_000_000,
                medias: vec![MediaReport {
                    index: 1,
                    media_type: "audio".into(),
                    protocol: "RTP/AVP".into(),
                    streams: vec![StreamReport {
                        local_address: "127.0.0.1".parse().unwrap(),
                        local_port: 30000,
                        endpoint: Some("127.0.0.1:4000".parse().unwrap()),
                        advertised_endpoint: None,
                        last_packet: 0,
                        is_rtcp: false,
                        kernelized: true,
                        stats: Counters {
                            packets: 3,
                            bytes: 516,
                            errors: 1,
                        },
                    }],
                }],
            }],
            totals_rtp: Counters {
                packets: 3,
                bytes: 516,
                errors: 1,
            },
            totals_rtcp: Counters::default(),
        };
        let encoded = Reply::ok(ReplyBody::Call(Box::new(report)))
            .to_value()
            .encode();
        let value = decode(&encoded).unwrap();
        assert_eq!(value.get("result").and_then(Value::as_str), Some("ok"));
        assert_eq!(
            value.get("created").and_then(Value::as_int),
            Some(1_700_000_000)
        );
        assert_eq!(
            value.get("created_us").and_then(Value::as_int),
            Some(123_456)
        );
        let rtp = value.get("totals").and_then(|t| t.get("RTP")).unwrap();
        assert_eq!(rtp.get("packets").and_then(Value::as_int), Some(3));
        let tag = value.get("tags").and_then(|t| t.get("ft")).unwrap();
        assert_eq!(tag.get("label").and_then(Value::as_str), Some("caller"));
        let stream = &tag.get("medias").and_then(Value::as_list).unwrap()[0]
            .get("streams")
            .and_then(Value::as_list)
            .unwrap()[0];
        assert_eq!(
            stream.get("local port").and_then(Value::as_int),
            Some(30000)
        );
        assert_eq!(
            stream
                .get("endpoint")
                .and_then(|e| e.get("port"))
                .and_then(Value::as_int),
            Some(4000)
        );
    }

    #[test]
    fn list_and_statistics_shapes() {
        let list = Reply::ok(ReplyBody::Calls(vec!["a".into(), "b".into()])).to_value();
        assert_eq!(
            list.get("calls").and_then(Value::as_list).map(<[_]>::len),
            Some(2)
        );
        let stats = Reply::ok(ReplyBody::Statistics(Statistics {
            sessions_own: 2,
            uptime_seconds: 18,
            ..Statistics::default()
        }))
        .to_value();
        let current = stats
            .get("statistics")
            .and_then(|s| s.get("currentstatistics"))
            .unwrap();
        assert_eq!(current.get("sessionsown").and_then(Value::as_int), Some(2));
        let total = stats
            .get("statistics")
            .and_then(|s| s.get("totalstatistics"))
            .unwrap();
        assert_eq!(total.get("uptime").and_then(Value::as_str), Some("18"));
    }

    fn query() -> NgCommand<'static> {
        NgCommand::Query(Query {
            call_id: "c".into(),
            from_tag: None,
            to_tag: None,
        })
    }

    fn delete() -> NgCommand<'static> {
        NgCommand::Delete(Delete::call("c"))
    }

    fn offer() -> NgCommand<'static> {
        crate::parse_request(b"d7:command5:offer7:call-id1:c8:from-tag1:f3:sdp3:v=0e").unwrap()
    }

    /// What the relay encodes, the client decodes to the same reply.
    fn round_trip(reply: &Reply, command: &NgCommand<'_>) -> Result<Reply, ReplyError> {
        Reply::decode(&reply.to_value().encode(), command)
    }

    #[test]
    fn every_reply_shape_reads_back() {
        let cases = [
            (Reply::Pong, NgCommand::Ping),
            (Reply::ok(ReplyBody::Empty), NgCommand::Ping),
            (Reply::ok(ReplyBody::Sdp(b"v=0\r\n".to_vec())), offer()),
            (Reply::ok(ReplyBody::Empty), delete()),
            (Reply::ok(ReplyBody::Call(Box::default())), delete()),
            (Reply::ok(ReplyBody::Call(Box::default())), query()),
            (
                Reply::ok(ReplyBody::Calls(vec!["a".into(), "b".into()])),
                NgCommand::List { limit: 2 },
            ),
            (
                Reply::ok(ReplyBody::Statistics(Statistics {
                    sessions_own: 2,
                    sessions_total: 3,
                    uptime_seconds: 18,
                    managed_sessions: 4,
                    timeout_sessions: 5,
                    deleted_sessions: 6,
                    rtp: Counters {
                        packets: 7,
                        bytes: 8,
                        errors: 9,
                    },
                    rtcp: Counters {
                        packets: 10,
                        bytes: 11,
                        errors: 12,
                    },
                })),
                NgCommand::Statistics,
            ),
            (Reply::error("Unknown call-id"), query()),
            (
                Reply::Ok {
                    warning: Some("Call-ID not found or tags didn't match".into()),
                    body: ReplyBody::Empty,
                },
                delete(),
            ),
        ];
        for (reply, command) in cases {
            assert_eq!(
                round_trip(&reply, &command),
                Ok(reply.clone()),
                "{command:?}"
            );
        }
    }

    #[test]
    fn unusable_replies_are_typed_errors() {
        assert!(matches!(
            Reply::decode(b"d6:result", &query()),
            Err(ReplyError::Bencode(_))
        ));
        assert_eq!(
            Reply::decode(b"d3:sdp3:v=0e", &offer()),
            Err(ReplyError::NoResult)
        );
        assert_eq!(Reply::decode(b"le", &query()), Err(ReplyError::NoResult));
        let load_limit = Reply::decode(b"d6:result10:load limite", &offer()).unwrap_err();
        assert_eq!(
            load_limit,
            ReplyError::UnexpectedResult("load limit".into())
        );
        assert_eq!(load_limit.to_string(), "result `load limit`");
        let no_sdp = Reply::decode(b"d6:result2:oke", &offer()).unwrap_err();
        assert_eq!(no_sdp.to_string(), "offer reply has no sdp");
        assert_eq!(
            Reply::decode(b"d6:result5:errore", &query()),
            Ok(Reply::Error("no reason given".into()))
        );
    }

    #[test]
    fn an_rtpengine_query_reply_reads_leniently() {
        // rtpengine's shape: extra keys, a tag without its own `tag` key, a stream without
        // `local port`, integers as strings, an RTCP stream second.
        let flags = |flags: &[&str]| Value::List(flags.iter().map(|f| Value::string(*f)).collect());
        let rtp = dict(vec![
            ("local port", Value::Int(30000)),
            ("local address", Value::string("127.0.0.1")),
            (
                "endpoint",
                dict(vec![
                    ("address", Value::string("192.0.2.5")),
                    ("port", Value::Int(4000)),
                ]),
            ),
            ("flags", flags(&["RTP", "kernelized"])),
            ("stats", dict(vec![("packets", Value::string("12"))])),
            ("unknown", Value::Int(1)),
        ]);
        let rtcp = dict(vec![("flags", flags(&["RTCP"]))]);
        let caller = dict(vec![
            (
                "medias",
                Value::List(vec![dict(vec![
                    ("index", Value::string("1")),
                    ("type", Value::string("audio")),
                    ("streams", Value::List(vec![rtp, rtcp])),
                ])]),
            ),
            ("label", Value::string("caller")),
            ("in dialogue with", Value::string("t2")),
        ]);
        let callee_stream = dict(vec![("stats", dict(vec![("errors", Value::Int(3))]))]);
        let callee = dict(vec![(
            "medias",
            Value::List(vec![dict(vec![(
                "streams",
                Value::List(vec![callee_stream]),
            )])]),
        )]);
        let reply = dict(vec![
            ("result", Value::string("ok")),
            ("created", Value::Int(1_700_000_000)),
            ("created_us", Value::string("500")),
            (
                "tags",
                Value::Dict(vec![
                    (Cow::Borrowed(b"t1".as_slice()), caller),
                    (Cow::Borrowed(b"t2".as_slice()), callee),
                ]),
            ),
            (
                "totals",
                dict(vec![("RTP", dict(vec![("packets", Value::Int(12))]))]),
            ),
        ]);
        let payload = reply.encode();
        let Ok(Reply::Ok {
            body: ReplyBody::Call(report),
            ..
        }) = Reply::decode(&payload, &query())
        else {
            panic!("a call report");
        };
        assert_eq!(report.created_us, 1_700_000_000_000_500);
        assert_eq!(report.totals_rtp.packets, 12);
        assert_eq!(report.totals_rtcp, Counters::default());
        let tags: Vec<&str> = report.tags.iter().map(|tag| tag.tag.as_str()).collect();
        assert_eq!(tags, ["t1", "t2"]);
        let caller = &report.tags[0];
        assert_eq!(caller.label.as_deref(), Some("caller"));
        let streams = &caller.medias[0].streams;
        assert_eq!(caller.medias[0].media_type, "audio");
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].local_port, 30000);
        assert_eq!(streams[0].endpoint, Some("192.0.2.5:4000".parse().unwrap()));
        assert!(streams[0].kernelized && !streams[0].is_rtcp);
        assert_eq!(streams[0].stats.packets, 12);
        assert!(streams[1].is_rtcp);
        let callee = &report.tags[1].medias[0].streams[0];
        assert_eq!(callee.local_port, 0);
        assert_eq!(callee.stats.errors, 3);
        assert_eq!(callee.endpoint, None);
    }

    fn counters() -> impl Strategy<Value = Counters> {
        (0..i64::MAX as u64, 0..i64::MAX as u64, 0..i64::MAX as u64).prop_map(
            |(packets, bytes, errors)| Counters {
                packets,
                bytes,
                errors,
            },
        )
    }

    fn stream() -> impl Strategy<Value = StreamReport> {
        (
            any::<IpAddr>(),
            any::<u16>(),
            proptest::option::of(
                any::<SocketAddr>().prop_map(|a| SocketAddr::new(a.ip(), a.port())),
            ),
            proptest::option::of(
                any::<SocketAddr>().prop_map(|a| SocketAddr::new(a.ip(), a.port())),
            ),
            0..i64::MAX as u64,
            (any::<bool>(), any::<bool>()),
            counters(),
        )
            .prop_map(
                |(
                    local_address,
                    local_port,
                    endpoint,
                    advertised_endpoint,
                    last_packet,
                    (is_rtcp, kernelized),
                    stats,
                )| {
                    StreamReport {
                        local_address,
                        local_port,
                        endpoint,
                        advertised_endpoint,
                        last_packet,
                        is_rtcp,
                        kernelized,
                        stats,
                    }
                },
            )
    }

    fn tag(name: String) -> impl Strategy<Value = TagReport> {
        let media = (
            any::<u32>(),
            "[a-z]{1,8}",
            "[A-Z/]{1,8}",
            proptest::collection::vec(stream(), 0..3),
        )
            .prop_map(|(index, media_type, protocol, streams)| MediaReport {
                index,
                media_type,
                protocol,
                streams,
            });
        (
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
            0..i64::MAX as u64,
            proptest::collection::vec(media, 0..3),
        )
            .prop_map(move |(label, via_branch, created, medias)| TagReport {
                tag: name.clone(),
                label,
                via_branch,
                created,
                medias,
            })
    }

    fn report() -> impl Strategy<Value = CallReport> {
        let tags =
            proptest::collection::btree_set("[a-zA-Z0-9-]{1,12}", 0..4).prop_flat_map(|names| {
                // The reply dictionary sorts its keys: the tags come back in name order.
                names.into_iter().map(tag).collect::<Vec<_>>()
            });
        (
            0..i64::MAX as u64,
            0..i64::MAX as u64,
            tags,
            counters(),
            counters(),
        )
            .prop_map(|(created_us, last_signal, tags, totals_rtp, totals_rtcp)| {
                CallReport {
                    created_us,
                    last_signal,
                    tags,
                    totals_rtp,
                    totals_rtcp,
                }
            })
    }

    /// Reply-shaped values: dictionaries keyed by the words replies use, leaves that are
    /// numbers, addresses, flags or noise.
    fn reply_like() -> impl Strategy<Value = Value<'static>> {
        const WORDS: &[&str] = &[
            "result",
            "ok",
            "error",
            "pong",
            "warning",
            "error-reason",
            "sdp",
            "tags",
            "tag",
            "label",
            "via-branch",
            "created",
            "created_us",
            "created_ts",
            "last signal",
            "medias",
            "index",
            "type",
            "protocol",
            "streams",
            "local port",
            "local address",
            "endpoint",
            "advertised endpoint",
            "address",
            "port",
            "last packet",
            "flags",
            "RTP",
            "RTCP",
            "kernelized",
            "stats",
            "packets",
            "bytes",
            "errors",
            "totals",
            "calls",
            "statistics",
            "currentstatistics",
            "totalstatistics",
            "sessionsown",
            "uptime",
            "rtp",
            "rtcp",
            "127.0.0.1",
            "::1",
            "42",
            "-7",
            "99999999999999999999",
        ];
        let word = proptest::sample::select(WORDS);
        let leaf = prop_oneof![
            word.clone().prop_map(Value::string),
            any::<i64>().prop_map(Value::Int),
            (0_i64..70_000).prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| Value::Bytes(Cow::Owned(b))),
        ];
        let tree = leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                proptest::collection::vec((word.clone(), inner), 0..6).prop_map(|entries| {
                    Value::Dict(
                        entries
                            .into_iter()
                            .map(|(key, value)| (Cow::Borrowed(key.as_bytes()), value))
                            .collect(),
                    )
                }),
            ]
        });
        (
            proptest::collection::vec((proptest::sample::select(WORDS), tree), 0..8),
            prop_oneof![Just("ok"), Just("error"), Just("pong")],
        )
            .prop_map(|(entries, result)| {
                let mut entries: Vec<(Cow<'static, [u8]>, Value<'static>)> = entries
                    .into_iter()
                    .map(|(key, value)| (Cow::Borrowed(key.as_bytes()), value))
                    .collect();
                entries.insert(
                    0,
                    (Cow::Borrowed(b"result".as_slice()), Value::string(result)),
                );
                Value::Dict(entries)
            })
    }

    proptest! {
        /// Whatever a relay sends, once the client has read it, the relay's encoding of that
        /// reading reads back to itself (tags in key order): decoding loses nothing it keeps.
        #[test]
        fn a_decoded_reply_is_a_fixed_point_after_one_round(reply in reply_like()) {
            for command in [NgCommand::Ping, query(), delete(), offer(), NgCommand::Statistics, NgCommand::List { limit: 1 }] {
                let Ok(first) = Reply::decode(&reply.encode(), &command) else {
                    continue;
                };
                let second = round_trip(&first, &command);
                prop_assert!(second.is_ok(), "{:?} -> {:?}", first, second);
                let second = second.unwrap();
                prop_assert_eq!(round_trip(&second, &command), Ok(second));
            }
        }

        /// A call report the relay encodes reads back whole on the client side.
        #[test]
        fn call_reports_round_trip(report in report()) {
            let reply = Reply::ok(ReplyBody::Call(Box::new(report)));
            prop_assert_eq!(round_trip(&reply, &query()), Ok(reply));
        }

        /// Any payload decodes to a reply or a typed error, for every command.
        #[test]
        fn decoding_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            for command in [NgCommand::Ping, query(), delete(), offer(), NgCommand::Statistics, NgCommand::List { limit: 1 }] {
                let _ = Reply::decode(&payload, &command);
            }
        }
    }
}
