//! Typed ng replies and their bencode shapes (ng-protocol.md §2).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::bencode::Value;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::decode;

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
}
