//! The registrar (RFC 3261 §10.3) with Path support (RFC 3327 §5.3).
//!
//! [`Registrar::handle_register`] follows the steps of §10.3: extensions (Require), digest
//! authentication, authorization (the authenticated subscriber must own the To address-of-record,
//! else 403), Contact processing with expiry clamping (423 below the minimum), and the
//! Call-ID/CSeq ordering of step 7. All changes reach the database before the 200 OK is built,
//! and the 200 lists every current binding with its remaining `expires`.
//!
//! Choices where the RFC leaves room (matching Kamailio's registrar as used by Sipwise C5):
//! - same Call-ID with a CSeq not above the stored one aborts the whole request with
//!   400 "Invalid CSeq Number" and changes nothing;
//! - more live bindings than `max_contacts` aborts with 503 "Too Many Registered Contacts";
//! - Path is always stored and echoed in the 200 only when the UA sent `Supported: path`
//!   (Kamailio `path_mode=1`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sip_message::{Contact, HeaderName, Message, Method, Scheme};
use store::Store;

use crate::authentication::{AuthOutcome, Authenticator};
use crate::location::{AddressOfRecord, Binding, BindingChanges, Location};
use crate::reply::local_response;

/// Expiry limits and the contact cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest registration accepted; shorter non-zero requests get 423 (RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Longest registration granted; longer requests are shortened to this.
    pub max_expires: u32,
    /// Used when neither the contact nor the request says how long.
    pub default_expires: u32,
    /// Most live bindings per address-of-record.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 43_200,
            default_expires: 3_600,
            max_contacts: 5,
        }
    }
}

/// Longest contact URI stored (the `location.contact` column).
const MAX_CONTACT_LENGTH: usize = 512;
/// Longest Call-ID stored (the `location.call_id` column).
const MAX_CALL_ID_LENGTH: usize = 255;
/// Option tags this registrar implements.
const SUPPORTED_EXTENSIONS: &[&[u8]] = &[b"path"];
/// Independent locks so REGISTERs for different addresses-of-record proceed in parallel while
/// two for the same one never interleave their read-check-write.
const LOCK_SHARDS: usize = 64;

/// The registrar: authenticates REGISTER requests and maintains the location service.
#[derive(Debug)]
pub struct Registrar {
    location: Arc<Location>,
    authenticator: Arc<Authenticator>,
    config: RegistrarConfig,
    locks: Vec<tokio::sync::Mutex<()>>,
}

/// A Contact of the request, read and checked.
#[derive(Debug)]
struct RequestedContact {
    uri: String,
    q: u16,
    expires: u32,
    instance: Option<String>,
    reg_id: Option<u32>,
    host_ip: Option<IpAddr>,
    port: Option<u16>,
}

/// What the Contact headers ask for.
#[derive(Debug)]
enum ContactRequest {
    /// No Contact: a query for the current bindings.
    Query,
    /// `Contact: *` with `Expires: 0`.
    RemoveAll,
    /// Add, refresh or remove these.
    Bindings(Vec<RequestedContact>),
}

impl Registrar {
    /// A registrar over `location`, authenticating with `authenticator`. `store` is the
    /// provisioning database (the authenticator and location already hold clones of it).
    pub fn new(
        _store: Store,
        location: Arc<Location>,
        authenticator: Arc<Authenticator>,
        config: RegistrarConfig,
    ) -> Self {
        Self {
            location,
            authenticator,
            config,
            locks: (0..LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The location service this registrar writes.
    pub fn location(&self) -> &Arc<Location> {
        &self.location
    }

    /// Processes a REGISTER received from `source` (the phone's real address, as the LB
    /// reported it) at `now_unix` and returns the response to send.
    pub async fn handle_register(
        &self,
        request: &Message,
        source: SocketAddr,
        now_unix: u64,
    ) -> Message {
        match self.register(request, source, now_unix).await {
            Ok(response) | Err(response) => response,
        }
    }

    async fn register(
        &self,
        request: &Message,
        source: SocketAddr,
        now_unix: u64,
    ) -> Result<Message, Message> {
        let fail = |status: u16, reason: &str| local_response(request, status, reason).build();
        if request.method() != Some(&Method::Register) {
            return Err(local_response(request, 405, "Method Not Allowed")
                .header(HeaderName::Allow, "REGISTER")
                .build());
        }
        // Step 2: extensions we do not implement (RFC 3261 §8.2.2.3).
        let unsupported: Vec<String> = request
            .require()
            .filter(|tag| {
                !SUPPORTED_EXTENSIONS
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(tag))
            })
            .map(|tag| String::from_utf8_lossy(tag).into_owned())
            .collect();
        if !unsupported.is_empty() {
            return Err(local_response(request, 420, "Bad Extension")
                .header(HeaderName::Unsupported, unsupported.join(", "))
                .build());
        }
        // Step 5 before 3 only to read the AoR; nothing is revealed before authentication.
        let to = request
            .to()
            .map_err(|_| fail(400, "Bad Request - malformed To"))?;
        // RFC 4475 §3.3.4: a To that is no SIP or SIPS URI is a bad request, not an unknown
        // user.
        if !matches!(to.uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err(fail(400, "Bad Request - To is not a SIP URI"));
        }
        let aor = AddressOfRecord::from_uri(&to.uri).map_err(|_| fail(404, "Not Found"))?;

        // Steps 3 and 4: authenticate, then authorize (RFC 3261 §10.3 steps 3-4).
        let subscriber = match self
            .authenticator
            .authenticate(request, source, now_unix)
            .await
        {
            AuthOutcome::Authenticated(subscriber) => subscriber,
            AuthOutcome::Challenge(response) | AuthOutcome::Rejected(response) => {
                return Err(response);
            }
        };
        if subscriber.username != aor.user || subscriber.domain != aor.domain {
            tracing::info!(
                authenticated = %format!("{}@{}", subscriber.username, subscriber.domain),
                %aor, "refused: REGISTER for another subscriber's address-of-record"
            );
            return Err(fail(403, "Forbidden"));
        }

        let call_id = request
            .call_id()
            .map_err(|_| fail(400, "Bad Request - malformed Call-ID"))?;
        let call_id = String::from_utf8_lossy(call_id).into_owned();
        if call_id.is_empty() || call_id.len() > MAX_CALL_ID_LENGTH {
            return Err(fail(400, "Bad Request - Call-ID too long"));
        }
        let cseq = request
            .cseq()
            .map_err(|_| fail(400, "Bad Request - malformed CSeq"))?
            .number;
        let contacts = self.read_contacts(request).map_err(|response| *response)?;
        let path: Vec<String> = request
            .paths()
            .map(|path| path.map(|path| String::from_utf8_lossy(path.raw).into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| fail(400, "Bad Request - malformed Path"))?;
        let user_agent = request
            .header(&HeaderName::UserAgent)
            .map(|value| String::from_utf8_lossy(value).into_owned());

        let _serialized = self.locks[self.shard(&aor)].lock().await;
        let current = self.location.lookup_at(&aor, now_unix);
        let changes = match decide_register(
            &RegisterRequest {
                contacts,
                call_id: &call_id,
                cseq,
                path: &path,
                user_agent: user_agent.as_deref(),
                source,
                now_unix,
            },
            &current,
            self.config.max_contacts,
        ) {
            RegisterDecision::Apply(changes) => changes,
            RegisterDecision::Refuse { status, reason } => return Err(fail(status, reason)),
        };
        if let Err(error) = self.location.apply(&aor, &changes).await {
            tracing::error!(%error, %aor, "storing the registration failed");
            return Err(local_response(request, 500, "Server Internal Error")
                .header(HeaderName::RetryAfter, "5")
                .build());
        }
        let bindings = self.location.lookup_at(&aor, now_unix);
        Ok(self.ok_response(request, &bindings, &path, now_unix))
    }

    /// Reads and checks the Contact headers (RFC 3261 §10.3 step 6, §10.2.2).
    fn read_contacts(&self, request: &Message) -> Result<ContactRequest, Box<Message>> {
        let fail =
            |status: u16, reason: &str| Box::new(local_response(request, status, reason).build());
        let header_expires = request
            .expires()
            .map_err(|_| fail(400, "Bad Request - malformed Expires"))?;
        let mut wildcard = false;
        let mut requested = Vec::new();
        for contact in request.contacts() {
            let contact = contact.map_err(|_| fail(400, "Bad Request - malformed Contact"))?;
            let address = match contact {
                Contact::Wildcard => {
                    wildcard = true;
                    continue;
                }
                Contact::Address(address) => address,
            };
            let uri = std::str::from_utf8(address.uri.raw)
                .map_err(|_| fail(400, "Bad Request - Contact is not UTF-8"))?;
            if uri.len() > MAX_CONTACT_LENGTH {
                return Err(fail(400, "Bad Request - Contact URI too long"));
            }
            let q = match address.param(b"q") {
                None => 1000,
                Some(value) => value
                    .and_then(parse_q_value)
                    .ok_or_else(|| fail(400, "Bad Request - invalid q value"))?,
            };
            let requested_expires = contact
                .expires()
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            let expires = if requested_expires == 0 {
                0
            } else if requested_expires < self.config.min_expires {
                // RFC 3261 §10.3 step 7 / §21.4.17: too brief, say the minimum.
                return Err(Box::new(
                    local_response(request, 423, "Interval Too Brief")
                        .header(HeaderName::MinExpires, self.config.min_expires.to_string())
                        .build(),
                ));
            } else {
                requested_expires.min(self.config.max_expires)
            };
            let instance = address
                .param(b"+sip.instance")
                .flatten()
                .map(|value| String::from_utf8_lossy(value).into_owned());
            let reg_id = address
                .param(b"reg-id")
                .flatten()
                .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok());
            let host_ip = address.uri.host.ip();
            // The same contact twice in one request: the last one wins, one binding results.
            requested.retain(|earlier: &RequestedContact| earlier.uri != uri);
            requested.push(RequestedContact {
                uri: uri.to_owned(),
                q,
                expires,
                instance,
                reg_id,
                host_ip,
                port: address.uri.port,
            });
        }
        if wildcard {
            // RFC 3261 §10.2.2: `*` only alone and only with Expires: 0.
            if !requested.is_empty() || header_expires != Some(0) {
                return Err(fail(
                    400,
                    "Bad Request - Contact: * needs Expires: 0 and no other contact",
                ));
            }
            return Ok(ContactRequest::RemoveAll);
        }
        if requested.is_empty() {
            return Ok(ContactRequest::Query);
        }
        Ok(ContactRequest::Bindings(requested))
    }

    /// 200 OK listing every current binding with the seconds it has left (RFC 3261 §10.3
    /// step 8), and the Path when the UA supports it (RFC 3327 §5.3).
    fn ok_response(
        &self,
        request: &Message,
        bindings: &[Binding],
        path: &[String],
        now_unix: u64,
    ) -> Message {
        let mut builder = local_response(request, 200, "OK");
        for binding in bindings {
            let mut value = format!(
                "<{}>;expires={}",
                binding.contact,
                binding.remaining_seconds(now_unix)
            );
            if binding.q != 1000 {
                value.push_str(";q=");
                value.push_str(&format_q_value(binding.q));
            }
            builder = builder.header(HeaderName::Contact, value);
        }
        let supports_path = request
            .supported()
            .any(|tag| tag.eq_ignore_ascii_case(b"path"));
        if supports_path {
            for entry in path {
                builder = builder.header(HeaderName::Path, entry.clone());
            }
        }
        builder.build()
    }

    fn shard(&self, aor: &AddressOfRecord) -> usize {
        let mut hasher = DefaultHasher::new();
        aor.hash(&mut hasher);
        (hasher.finish() % LOCK_SHARDS as u64) as usize
    }
}

/// A REGISTER's asks, read and checked: the input of [`decide_register`].
#[derive(Debug)]
struct RegisterRequest<'a> {
    contacts: ContactRequest,
    call_id: &'a str,
    cseq: u32,
    path: &'a [String],
    user_agent: Option<&'a str>,
    /// The phone's real address (a NATed contact is reached here).
    source: SocketAddr,
    now_unix: u64,
}

/// What a REGISTER does to the address-of-record's bindings (RFC 3261 §10.3 steps 6-8).
#[derive(Debug, PartialEq, Eq)]
enum RegisterDecision {
    /// Store these changes (none for a query) and answer 200 with the bindings.
    Apply(BindingChanges),
    /// Answer with this error; nothing changes.
    Refuse { status: u16, reason: &'static str },
}

/// The registrar's decision over plain inputs: the request's contacts against the `current`
/// live bindings. Pure; the registrar stores and answers.
fn decide_register(
    request: &RegisterRequest<'_>,
    current: &[Binding],
    max_contacts: usize,
) -> RegisterDecision {
    let invalid_cseq = RegisterDecision::Refuse {
        status: 400,
        reason: "Invalid CSeq Number",
    };
    let mut changes = BindingChanges::default();
    match &request.contacts {
        ContactRequest::Query => {}
        ContactRequest::RemoveAll => {
            // Step 6: `*` removes a binding only if its Call-ID differs or the CSeq is higher.
            if current
                .iter()
                .any(|binding| binding.call_id == request.call_id && request.cseq <= binding.cseq)
            {
                return invalid_cseq;
            }
            changes.removals = current.iter().map(|b| b.contact.clone()).collect();
        }
        ContactRequest::Bindings(requested) => {
            for contact in requested {
                let existing = current
                    .iter()
                    .find(|binding| binding.contact == contact.uri);
                // Step 7: same Call-ID needs a higher CSeq, else the update is aborted.
                if let Some(existing) = existing
                    && existing.call_id == request.call_id
                    && request.cseq <= existing.cseq
                {
                    return invalid_cseq;
                }
                if contact.expires == 0 {
                    if existing.is_some() {
                        changes.removals.push(contact.uri.clone());
                    }
                    continue;
                }
                changes.upserts.push(Binding {
                    contact: contact.uri.clone(),
                    q: contact.q,
                    expires_at_unix: request.now_unix.saturating_add(u64::from(contact.expires)),
                    path: request.path.to_vec(),
                    received: received_if_translated(contact, request.source),
                    call_id: request.call_id.to_owned(),
                    cseq: request.cseq,
                    user_agent: request.user_agent.map(str::to_owned),
                    instance: contact.instance.clone(),
                    reg_id: contact.reg_id,
                    updated_at_unix: request.now_unix,
                });
            }
            let remaining = current
                .iter()
                .filter(|binding| {
                    !changes.removals.contains(&binding.contact)
                        && !changes
                            .upserts
                            .iter()
                            .any(|upsert| upsert.contact == binding.contact)
                })
                .count();
            if remaining + changes.upserts.len() > max_contacts {
                return RegisterDecision::Refuse {
                    status: 503,
                    reason: "Too Many Registered Contacts",
                };
            }
        }
    }
    RegisterDecision::Apply(changes)
}

/// `sip:IP:PORT` of the source when the contact names another address (a NAT rewrote it).
fn received_if_translated(contact: &RequestedContact, source: SocketAddr) -> Option<String> {
    let same_ip = contact.host_ip == Some(source.ip());
    let same_port = contact.port.unwrap_or(5060) == source.port();
    if same_ip && same_port {
        return None;
    }
    Some(match source {
        SocketAddr::V4(address) => format!("sip:{}:{}", address.ip(), address.port()),
        SocketAddr::V6(address) => format!("sip:[{}]:{}", address.ip(), address.port()),
    })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 3261 §25.1) as
/// thousandths.
pub fn parse_q_value(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|&byte| byte == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for index in 0..3 {
        let digit = fraction.get(index).map_or(0, |byte| u16::from(byte - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Thousandths back to the shortest `qvalue` text.
pub fn format_q_value(q: u16) -> String {
    if q >= 1000 {
        return "1".to_owned();
    }
    let text = format!("0.{q:03}");
    let trimmed = text.trim_end_matches('0');
    if trimmed == "0." {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn wanted(uri: &str, expires: u32) -> RequestedContact {
        RequestedContact {
            uri: uri.to_owned(),
            q: 1000,
            expires,
            instance: None,
            reg_id: None,
            host_ip: None,
            port: None,
        }
    }

    fn bound(uri: &str, call_id: &str, cseq: u32) -> Binding {
        Binding {
            contact: uri.to_owned(),
            q: 1000,
            expires_at_unix: 2_000,
            path: Vec::new(),
            received: None,
            call_id: call_id.to_owned(),
            cseq,
            user_agent: None,
            instance: None,
            reg_id: None,
            updated_at_unix: 1_000,
        }
    }

    fn request(contacts: ContactRequest, call_id: &str, cseq: u32) -> RegisterRequest<'_> {
        RegisterRequest {
            contacts,
            call_id,
            cseq,
            path: &[],
            user_agent: None,
            source: "192.0.2.9:5060".parse().unwrap(),
            now_unix: 1_000,
        }
    }

    #[test]
    fn register_decisions_follow_section_10_3() {
        let current = [bound("sip:a@192.0.2.1", "call-1", 5)];
        // A refresh from the same Call-ID needs a higher CSeq (step 7).
        let stale = request(
            ContactRequest::Bindings(vec![wanted("sip:a@192.0.2.1", 600)]),
            "call-1",
            5,
        );
        assert_eq!(
            decide_register(&stale, &current, 5),
            RegisterDecision::Refuse {
                status: 400,
                reason: "Invalid CSeq Number"
            }
        );
        let fresh = request(
            ContactRequest::Bindings(vec![wanted("sip:a@192.0.2.1", 600)]),
            "call-1",
            6,
        );
        let RegisterDecision::Apply(changes) = decide_register(&fresh, &current, 5) else {
            panic!("a higher CSeq refreshes");
        };
        assert_eq!(changes.upserts.len(), 1);
        assert_eq!(changes.upserts[0].expires_at_unix, 1_600);
        // Expires 0 removes what exists and nothing else.
        let removal = request(
            ContactRequest::Bindings(vec![
                wanted("sip:a@192.0.2.1", 0),
                wanted("sip:never@192.0.2.1", 0),
            ]),
            "call-2",
            1,
        );
        let RegisterDecision::Apply(changes) = decide_register(&removal, &current, 5) else {
            panic!("removal applies");
        };
        assert_eq!(changes.removals, ["sip:a@192.0.2.1"]);
        assert!(changes.upserts.is_empty());
        // `*` removes every binding; a query changes nothing.
        let wildcard = request(ContactRequest::RemoveAll, "call-2", 1);
        assert_eq!(
            decide_register(&wildcard, &current, 5),
            RegisterDecision::Apply(BindingChanges {
                upserts: Vec::new(),
                removals: vec!["sip:a@192.0.2.1".to_owned()],
            })
        );
        let query = request(ContactRequest::Query, "call-2", 1);
        assert_eq!(
            decide_register(&query, &current, 5),
            RegisterDecision::Apply(BindingChanges::default())
        );
        // Too many contacts.
        let crowd = request(
            ContactRequest::Bindings(vec![wanted("sip:b@192.0.2.1", 60)]),
            "call-3",
            1,
        );
        assert_eq!(
            decide_register(&crowd, &current, 1),
            RegisterDecision::Refuse {
                status: 503,
                reason: "Too Many Registered Contacts"
            }
        );
    }

    proptest! {
        /// Whatever is bound and asked: an accepted decision never leaves more than
        /// `max_contacts` bindings, removes only what is bound, and upserts only what was asked
        /// for with a non-zero expiry.
        #[test]
        fn decisions_respect_the_contact_limit(
            bound_count in 0usize..6,
            asked in proptest::collection::vec((0usize..8, prop_oneof![Just(0u32), 60u32..4000]), 0..8),
            max_contacts in 1usize..6,
        ) {
            let current: Vec<Binding> = (0..bound_count)
                .map(|index| bound(&format!("sip:c{index}@192.0.2.1"), "old", 1))
                .collect();
            let mut contacts: Vec<RequestedContact> = Vec::new();
            for (index, expires) in asked {
                let uri = format!("sip:c{index}@192.0.2.1");
                contacts.retain(|contact| contact.uri != uri);
                contacts.push(wanted(&uri, expires));
            }
            let asked_uris: Vec<(String, u32)> =
                contacts.iter().map(|c| (c.uri.clone(), c.expires)).collect();
            let decision = decide_register(
                &request(ContactRequest::Bindings(contacts), "new", 1),
                &current,
                max_contacts,
            );
            if let RegisterDecision::Apply(changes) = decision {
                let kept = current
                    .iter()
                    .filter(|b| !changes.removals.contains(&b.contact)
                        && !changes.upserts.iter().any(|u| u.contact == b.contact))
                    .count();
                prop_assert!(kept + changes.upserts.len() <= max_contacts);
                for removal in &changes.removals {
                    prop_assert!(current.iter().any(|b| &b.contact == removal));
                }
                for upsert in &changes.upserts {
                    prop_assert!(asked_uris.iter().any(|(uri, expires)| uri == &upsert.contact && *expires > 0));
                }
            }
        }
    }

    #[test]
    fn q_values_parse_as_thousandths() {
        assert_eq!(parse_q_value(b"1"), Some(1000));
        assert_eq!(parse_q_value(b"1.000"), Some(1000));
        assert_eq!(parse_q_value(b"0.5"), Some(500));
        assert_eq!(parse_q_value(b"0.05"), Some(50));
        assert_eq!(parse_q_value(b"0.001"), Some(1));
        assert_eq!(parse_q_value(b"0"), Some(0));
        assert_eq!(parse_q_value(b"1.5"), None);
        assert_eq!(parse_q_value(b"0.0001"), None);
        assert_eq!(parse_q_value(b"2"), None);
        assert_eq!(parse_q_value(b"0.x"), None);
        assert_eq!(parse_q_value(b""), None);
    }

    #[test]
    fn q_values_print_back_shortest() {
        assert_eq!(format_q_value(1000), "1");
        assert_eq!(format_q_value(500), "0.5");
        assert_eq!(format_q_value(50), "0.05");
        assert_eq!(format_q_value(1), "0.001");
        assert_eq!(format_q_value(0), "0");
        for q in 0..=1000 {
            assert_eq!(parse_q_value(format_q_value(q).as_bytes()), Some(q));
        }
    }
}
