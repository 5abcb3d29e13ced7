//! Peering selection, pure: from the peering groups, rules and servers (plain records) and a
//! call that no local subscriber takes, the ordered list of servers to try, each with the
//! Request-URI to send, and the failover policy that says when the next one is tried.
//!
//! Selection, as C5 configures Kamailio's `lcr` module (`load_gws()`, `next_gw()`):
//! - a rule matches when it is enabled, the callee number starts with its `callee_prefix`
//!   (empty matches any number), and its `caller_pattern` / `callee_pattern` (regular
//!   expressions, absent or empty = any) match the caller / callee URI;
//! - the groups of matching rules are tried by group priority (1 first), and among rules of
//!   one priority the longest matching prefix first (a rule's *rank* is the pair); a group
//!   comes at the rank of its best matching rule;
//! - a matching `stopper` rule ends the search at its rank: rules ranked after it (a lower
//!   group priority, or the same priority with a shorter prefix) add nothing, rules of the same
//!   rank still do (lcr: "all other tuples with shorter prefixes are not considered");
//! - within a group, the enabled servers in weighted random order: weight `w` comes first with
//!   probability `w / sum`, then the same among the rest (drawing without replacement);
//! - every destination (server id, or address + port + transport) is tried once, at its first
//!   place.
//!
//! Failover ([`fails_over`]): a timeout, a transport error and the configured final statuses
//! (C5's default: 408, 500, 502, 503, 504) move to the next attempt; any other answer goes to
//! the caller.
//!
//! No I/O, no clock; randomness comes in as a function. Regular expressions (the `regex`
//! crate's syntax, linear-time matching) are compiled once, in [`PeeringTable::new`].

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use regex::Regex as Pattern;
use store::Transport;

/// A peering group as selection needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    /// 1 (tried first) to 9.
    pub priority: i64,
}

/// An outbound peering rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<'a> {
    pub id: i64,
    pub group_id: i64,
    /// Leading digits of the callee number; empty matches any number.
    pub callee_prefix: &'a str,
    /// Regular expression on the caller URI; `None` or empty matches any.
    pub caller_pattern: Option<&'a str>,
    /// Regular expression on the callee URI; `None` or empty matches any.
    pub callee_pattern: Option<&'a str>,
    pub enabled: bool,
    /// Once this rule matched, rules ranked after it are not considered.
    pub stopper: bool,
}

/// A peering server (a carrier's SIP host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server<'a> {
    pub id: i64,
    pub group_id: i64,
    /// IPv4 or IPv6 address to send to.
    pub ip: &'a str,
    /// Host name for the Request-URI instead of the address.
    pub host: Option<&'a str>,
    pub port: u16,
    pub transport: Transport,
    /// Load-sharing weight, 1–127 (lower values count as 1).
    pub weight: i64,
    pub enabled: bool,
}

impl From<&store::PeeringGroup> for Group {
    fn from(group: &store::PeeringGroup) -> Self {
        Group {
            id: group.id,
            priority: group.priority,
        }
    }
}

impl<'a> From<&'a store::PeeringRule> for Rule<'a> {
    fn from(rule: &'a store::PeeringRule) -> Self {
        Rule {
            id: rule.id,
            group_id: rule.group_id,
            callee_prefix: &rule.callee_prefix,
            caller_pattern: rule.caller_pattern.as_deref(),
            callee_pattern: rule.callee_pattern.as_deref(),
            enabled: rule.enabled,
            stopper: rule.stopper,
        }
    }
}

impl<'a> From<&'a store::PeeringServer> for Server<'a> {
    fn from(server: &'a store::PeeringServer) -> Self {
        Server {
            id: server.id,
            group_id: server.group_id,
            ip: &server.ip,
            host: server.host.as_deref(),
            port: server.port,
            transport: server.transport,
            weight: server.weight,
            enabled: server.enabled,
        }
    }
}

/// The call to route to a peering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallForPeering<'a> {
    /// The caller's URI (`caller_pattern` is matched against it).
    pub caller_uri: &'a str,
    /// The callee's URI (`callee_pattern` is matched against it).
    pub callee_uri: &'a str,
    /// The callee's number, normalised (`callee_prefix` is matched against it); the user part
    /// of each attempt's Request-URI.
    pub callee_number: &'a str,
}

/// One server to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeringAttempt {
    pub server_id: i64,
    pub group_id: i64,
    /// Where to send.
    pub ip: IpAddr,
    pub port: u16,
    pub transport: Transport,
    /// `sip:<number>@<ip>:<port>` or `sip:<number>@<host>`, with `;transport=tcp|tls` when
    /// the transport is not UDP.
    pub request_uri: String,
}

impl PeeringAttempt {
    /// The address to send to.
    pub fn destination(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// The servers to try for a call, first to last; empty when no rule matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeeringPlan {
    pub attempts: Vec<PeeringAttempt>,
}

impl PeeringPlan {
    /// No peering takes the call.
    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }
}

/// Which kind of record [`PeeringTable::new`] left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Rule,
    Server,
}

/// A record left out of a [`PeeringTable`], and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub kind: RecordKind,
    pub id: i64,
    pub error: String,
}

/// An enabled rule with its patterns compiled.
#[derive(Debug, Clone)]
struct TableRule {
    id: i64,
    group_id: i64,
    priority: i64,
    callee_prefix: String,
    caller_pattern: Option<Pattern>,
    callee_pattern: Option<Pattern>,
    stopper: bool,
}

impl TableRule {
    /// Group priority first (1 first), then the longer prefix.
    fn rank(&self) -> (i64, Reverse<usize>) {
        (self.priority, Reverse(self.callee_prefix.len()))
    }

    fn matches(&self, call: &CallForPeering<'_>) -> bool {
        call.callee_number.starts_with(self.callee_prefix.as_str())
            && self
                .caller_pattern
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(call.caller_uri))
            && self
                .callee_pattern
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(call.callee_uri))
    }
}

/// An enabled server, ready to be an attempt.
#[derive(Debug, Clone)]
struct TableServer {
    id: i64,
    group_id: i64,
    ip: IpAddr,
    port: u16,
    transport: Transport,
    weight: u32,
    /// The Request-URI's host part (with the port when it is the address) and parameters.
    uri_host: String,
}

/// The peering configuration, compiled once for many calls.
#[derive(Debug, Clone, Default)]
pub struct PeeringTable {
    /// Enabled rules by rank, then group id and rule id (for a stable order).
    rules: Vec<TableRule>,
    /// Enabled servers by group, in id order.
    servers: HashMap<i64, Vec<TableServer>>,
}

impl PeeringTable {
    /// The table for these records, and the records it leaves out: rules with a pattern that
    /// does not compile or with no such group, servers whose `ip` is not an address. Disabled
    /// rules and servers are left out silently.
    pub fn new(
        groups: &[Group],
        rules: &[Rule<'_>],
        servers: &[Server<'_>],
    ) -> (PeeringTable, Vec<BadRecord>) {
        let mut bad = Vec::new();
        let mut priorities: HashMap<i64, i64> = HashMap::new();
        for group in groups {
            priorities.entry(group.id).or_insert(group.priority);
        }
        let mut table_rules = Vec::new();
        for rule in rules.iter().filter(|rule| rule.enabled) {
            let reject = |error: String| BadRecord {
                kind: RecordKind::Rule,
                id: rule.id,
                error,
            };
            let Some(&priority) = priorities.get(&rule.group_id) else {
                bad.push(reject(format!("no peering group {}", rule.group_id)));
                continue;
            };
            let compiled =
                compile_optional("caller_pattern", rule.caller_pattern).and_then(|caller| {
                    compile_optional("callee_pattern", rule.callee_pattern)
                        .map(|callee| (caller, callee))
                });
            let (caller_pattern, callee_pattern) = match compiled {
                Ok(patterns) => patterns,
                Err(error) => {
                    bad.push(reject(error));
                    continue;
                }
            };
            table_rules.push(TableRule {
                id: rule.id,
                group_id: rule.group_id,
                priority,
                callee_prefix: rule.callee_prefix.to_owned(),
                caller_pattern,
                callee_pattern,
                stopper: rule.stopper,
            });
        }
        table_rules.sort_by_key(|rule| (rule.rank(), rule.group_id, rule.id));

        let mut table_servers: HashMap<i64, Vec<TableServer>> = HashMap::new();
        for server in servers.iter().filter(|server| server.enabled) {
            let Ok(ip) = server.ip.parse::<IpAddr>() else {
                bad.push(BadRecord {
                    kind: RecordKind::Server,
                    id: server.id,
                    error: format!("ip {:?} is not an IPv4 or IPv6 address", server.ip),
                });
                continue;
            };
            table_servers
                .entry(server.group_id)
                .or_default()
                .push(TableServer {
                    id: server.id,
                    group_id: server.group_id,
                    ip,
                    port: server.port,
                    transport: server.transport,
                    weight: u32::try_from(server.weight.max(1)).unwrap_or(u32::MAX),
                    uri_host: uri_host(ip, server.host, server.port, server.transport),
                });
        }
        for group in table_servers.values_mut() {
            group.sort_by_key(|server| server.id);
        }
        let table = PeeringTable {
            rules: table_rules,
            servers: table_servers,
        };
        (table, bad)
    }

    /// The attempts for `call`; `random` draws the weighted order (uniform `u32`s).
    pub fn select(
        &self,
        call: &CallForPeering<'_>,
        random: &mut impl FnMut() -> u32,
    ) -> PeeringPlan {
        let mut groups: Vec<i64> = Vec::new();
        let mut stopped_at = None;
        for rule in &self.rules {
            if stopped_at.is_some_and(|rank| rule.rank() != rank) {
                // Sorted by rank: everything from here on ranks after the stopper.
                break;
            }
            if !rule.matches(call) {
                continue;
            }
            if !groups.contains(&rule.group_id) {
                groups.push(rule.group_id);
            }
            if rule.stopper && stopped_at.is_none() {
                stopped_at = Some(rule.rank());
            }
        }

        let mut seen_ids = HashSet::new();
        let mut seen_destinations = HashSet::new();
        let mut attempts = Vec::new();
        for group in groups {
            let Some(servers) = self.servers.get(&group) else {
                continue;
            };
            let fresh: Vec<&TableServer> = servers
                .iter()
                .filter(|server| {
                    !seen_ids.contains(&server.id)
                        && !seen_destinations.contains(&(server.ip, server.port, server.transport))
                })
                .collect();
            for server in weighted_order(fresh, random) {
                // Two servers of one group may share a destination too.
                if !seen_ids.insert(server.id)
                    || !seen_destinations.insert((server.ip, server.port, server.transport))
                {
                    continue;
                }
                attempts.push(PeeringAttempt {
                    server_id: server.id,
                    group_id: server.group_id,
                    ip: server.ip,
                    port: server.port,
                    transport: server.transport,
                    request_uri: request_uri(call.callee_number, &server.uri_host),
                });
            }
        }
        PeeringPlan { attempts }
    }
}

/// [`PeeringTable::new`] and [`PeeringTable::select`] in one go, for a single call; records
/// the table would leave out are skipped.
pub fn select(
    groups: &[Group],
    rules: &[Rule<'_>],
    servers: &[Server<'_>],
    call: &CallForPeering<'_>,
    random: &mut impl FnMut() -> u32,
) -> PeeringPlan {
    PeeringTable::new(groups, rules, servers)
        .0
        .select(call, random)
}

fn compile_optional(field: &str, pattern: Option<&str>) -> Result<Option<Pattern>, String> {
    match pattern {
        None | Some("") => Ok(None),
        Some(pattern) => Pattern::new(pattern)
            .map(Some)
            .map_err(|error| format!("{field} {pattern:?}: {error}")),
    }
}

/// `servers` in weighted random order: each draw picks server `i` with probability
/// `weight_i / sum of the remaining weights`.
fn weighted_order<'s>(
    mut pool: Vec<&'s TableServer>,
    random: &mut impl FnMut() -> u32,
) -> Vec<&'s TableServer> {
    let mut ordered = Vec::with_capacity(pool.len());
    while pool.len() > 1 {
        let total: u64 = pool.iter().map(|server| u64::from(server.weight)).sum();
        // Uniform in 0..total: the high half of random × total.
        let scaled = (u128::from(random()) * u128::from(total)) >> 32;
        let mut point = u64::try_from(scaled).unwrap_or(total - 1);
        let mut chosen = pool.len() - 1;
        for (index, server) in pool.iter().enumerate() {
            let weight = u64::from(server.weight);
            if point < weight {
                chosen = index;
                break;
            }
            point -= weight;
        }
        ordered.push(pool.remove(chosen));
    }
    ordered.extend(pool);
    ordered
}

/// The host part and parameters of a server's Request-URIs: `ip:port` (IPv6 in brackets) or
/// the host name alone (lcr: the name goes in the Request-URI, the address and port are the
/// destination), then `;transport=tcp|tls` unless UDP.
fn uri_host(ip: IpAddr, host: Option<&str>, port: u16, transport: Transport) -> String {
    let mut out = String::new();
    match host.filter(|host| !host.is_empty()) {
        Some(host) => match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => {
                let _ = write!(out, "[{v6}]");
            }
            Err(_) => out.push_str(host),
        },
        None => {
            let _ = write!(out, "{}", SocketAddr::new(ip, port));
        }
    }
    match transport {
        Transport::Udp => {}
        Transport::Tcp => out.push_str(";transport=tcp"),
        Transport::Tls => out.push_str(";transport=tls"),
    }
    out
}

/// `sip:<number>@<uri_host>`, the number escaped as RFC 3261 §25.1 `user` requires.
fn request_uri(number: &str, uri_host: &str) -> String {
    let mut uri = String::from("sip:");
    if !number.is_empty() {
        for byte in number.bytes() {
            let plain = byte.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&byte);
            if plain {
                uri.push(char::from(byte));
            } else {
                let _ = write!(uri, "%{byte:02X}");
            }
        }
        uri.push('@');
    }
    uri.push_str(uri_host);
    uri
}

/// The final statuses after which the next peering server is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverCodes {
    /// Sorted, 300–599.
    codes: Vec<u16>,
}

impl FailoverCodes {
    /// C5's default: 408 Request Timeout and the server failures 500, 502, 503, 504.
    pub const DEFAULT: [u16; 5] = [408, 500, 502, 503, 504];

    /// A set of codes. Only 3xx–5xx count: a 2xx is an answer, and a 6xx is a global failure
    /// that RFC 3261 (§16.7, §21.6) says no other destination is tried after.
    pub fn new(codes: impl IntoIterator<Item = u16>) -> Self {
        let mut codes: Vec<u16> = codes
            .into_iter()
            .filter(|code| (300..600).contains(code))
            .collect();
        codes.sort_unstable();
        codes.dedup();
        FailoverCodes { codes }
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.codes.binary_search(&status).is_ok()
    }
}

impl Default for FailoverCodes {
    fn default() -> Self {
        FailoverCodes::new(FailoverCodes::DEFAULT)
    }
}

/// Whether an attempt that ended with `status` (`None`: a timeout or transport error, no
/// response at all) is followed by the next attempt; otherwise the response goes to the caller.
pub fn fails_over(status: Option<u16>, codes: &FailoverCodes) -> bool {
    match status {
        None => true,
        Some(status) => codes.contains(status),
    }
}

#[cfg(test)]
mod tests;
