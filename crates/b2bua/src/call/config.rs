//! What a call needs to know about its legs: our Contact on each, the header allow-list, the
//! option tags and methods the core relays, the call-length limit.

use std::time::Duration;

use bytes::Bytes;
use sip_core::internal_headers::is_internal_header;
use sip_core::transaction::TimerConfig;
use sip_message::{HeaderName, Method};

/// Headers the core never copies from one leg to the other, whatever the allow-list says:
/// they describe the leg itself (Via, Route, Record-Route, Contact, Call-ID, From, To, CSeq,
/// Max-Forwards, Path, Service-Route — rebuilt per leg or meaningless on the other one), hold
/// credentials for one hop (Authorization, Proxy-Authorization and their challenges), belong to
/// one hop's reliable provisional responses (RSeq, RAck), frame the body (Content-Length,
/// Content-Type, written with the body) or name software (User-Agent, Server: replaced by
/// [`LegConfig::user_agent`]). `X-Voxide-*` headers are never copied either
/// ([`sip_core::internal_headers`]).
pub const NEVER_COPIED: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::Contact,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Path,
    HeaderName::ServiceRoute,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::AuthenticationInfo,
    HeaderName::ProxyRequire,
    HeaderName::RSeq,
    HeaderName::RAck,
    HeaderName::UserAgent,
    HeaderName::Server,
];

/// The caller identity headers (RFC 3325): copied only when added to
/// [`HeaderPolicy::allow`], e.g. with [`HeaderPolicy::with_identity`]. Off by default: nothing
/// in front of the B2BUA checks a phone's P-Asserted-Identity yet, so passing it would let a
/// phone assert any number to a carrier.
pub const IDENTITY_HEADERS: &[HeaderName] = &[HeaderName::PAssertedIdentity, HeaderName::Privacy];

/// Which headers, option tags and methods cross from one leg to the other (SEMS sbc's
/// `header_filter=whitelist`, with a default list close to its transparent profile minus
/// everything that names a leg).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// Headers copied from a message on one leg into the message the core builds on the other
    /// (requests and responses alike), line by line. Names in [`NEVER_COPIED`] and
    /// `X-Voxide-*` are skipped even when listed. Supported, Require and Allow are filtered by
    /// [`HeaderPolicy::option_tags`] and [`HeaderPolicy::methods`].
    pub allow: Vec<HeaderName>,
    /// Option tags (RFC 3261 §19.2) kept in Supported and Require. A request whose Require
    /// names any other is answered 420 Bad Extension with Unsupported (§8.2.2.3).
    pub option_tags: Vec<Bytes>,
    /// Methods relayed inside a dialog besides BYE (which ends both legs) and the hop-by-hop
    /// ACK, CANCEL and PRACK. Anything else is answered 405 with Allow; Allow values that cross
    /// are filtered to these plus the hop-by-hop ones.
    pub methods: Vec<Method>,
}

impl Default for HeaderPolicy {
    /// Allow: Supported, Require, Allow (filtered); Accept, Accept-Encoding, Accept-Language;
    /// Content-Disposition, Content-Encoding, Content-Language, MIME-Version (the body's own
    /// description); Subject, Priority, Expires; Session-Expires and Min-SE (RFC 4028 passes
    /// end to end until the B2BUA runs session timers per leg); Reason (RFC 3326 causes),
    /// Retry-After, Unsupported, Info-Package and Recv-Info (RFC 6086). Option tags: `timer`.
    /// Methods: INVITE, UPDATE, INFO, OPTIONS.
    fn default() -> HeaderPolicy {
        HeaderPolicy {
            allow: vec![
                HeaderName::Supported,
                HeaderName::Require,
                HeaderName::Allow,
                HeaderName::Accept,
                HeaderName::AcceptEncoding,
                HeaderName::AcceptLanguage,
                HeaderName::ContentDisposition,
                HeaderName::ContentEncoding,
                HeaderName::ContentLanguage,
                HeaderName::MimeVersion,
                HeaderName::Subject,
                HeaderName::Priority,
                HeaderName::Expires,
                HeaderName::SessionExpires,
                HeaderName::MinSe,
                HeaderName::Reason,
                HeaderName::RetryAfter,
                HeaderName::Unsupported,
                HeaderName::InfoPackage,
                HeaderName::RecvInfo,
            ],
            option_tags: vec![Bytes::from_static(b"timer")],
            methods: vec![
                Method::Invite,
                Method::Update,
                Method::Info,
                Method::Options,
            ],
        }
    }
}

impl HeaderPolicy {
    /// The policy with P-Asserted-Identity and Privacy copied as well ([`IDENTITY_HEADERS`]).
    #[must_use]
    pub fn with_identity(mut self) -> HeaderPolicy {
        for name in IDENTITY_HEADERS {
            if !self.allow.contains(name) {
                self.allow.push(name.clone());
            }
        }
        self
    }

    /// Whether a header called `name` crosses to the other leg.
    pub fn copies(&self, name: &HeaderName) -> bool {
        !is_internal_header(name) && !NEVER_COPIED.contains(name) && self.allow.contains(name)
    }

    /// Whether the option tag is one the core passes (compared case-insensitively, as
    /// option tags are tokens).
    pub fn knows_option_tag(&self, tag: &[u8]) -> bool {
        self.option_tags
            .iter()
            .any(|known| known.eq_ignore_ascii_case(tag))
    }

    /// Whether requests of `method` are relayed inside a dialog.
    pub fn relays(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// Whether `method` may appear in an Allow that crosses: a relayed method or one the core
    /// handles on each leg itself (ACK, CANCEL, BYE).
    pub(crate) fn allows_method(&self, method: &Method) -> bool {
        matches!(method, Method::Ack | Method::Cancel | Method::Bye) || self.relays(method)
    }
}

/// The configuration of a call's two legs.
#[derive(Debug, Clone)]
pub struct LegConfig {
    /// Our Contact value on the A leg (towards the caller), e.g. `<sip:b2bua@192.0.2.7:5080>`:
    /// in our 1xx/2xx to the INVITE and in target refresh requests and responses.
    pub a_contact: Bytes,
    /// Our Contact value on the B leg: in the B INVITE and later target refreshes.
    pub b_contact: Bytes,
    /// Written as User-Agent in every request and as Server in every response the core builds;
    /// the other leg's User-Agent/Server is never copied. `None` writes neither.
    pub user_agent: Option<Bytes>,
    /// What crosses between the legs.
    pub headers: HeaderPolicy,
    /// The call-length limit, counted from the answer (C5's `max_call_duration`, SEMS's call
    /// timer): when it runs out both legs get a BYE and the call ends with
    /// [`crate::EndReason::MaxDuration`].
    pub max_duration: Option<Duration>,
    /// T1/T2 of the legs' dialogs (2xx retransmission until the ACK, RFC 3261 §13.3.1.4).
    pub timers: TimerConfig,
}

impl LegConfig {
    /// A configuration with our Contact on each leg and the defaults: User-Agent `voxide`,
    /// [`HeaderPolicy::default`], no call-length limit, RFC 3261 timers.
    pub fn new(a_contact: impl Into<Bytes>, b_contact: impl Into<Bytes>) -> LegConfig {
        LegConfig {
            a_contact: a_contact.into(),
            b_contact: b_contact.into(),
            user_agent: Some(Bytes::from_static(b"voxide")),
            headers: HeaderPolicy::default(),
            max_duration: None,
            timers: TimerConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_headers_credentials_and_internal_headers_never_cross() {
        let mut policy = HeaderPolicy::default().with_identity();
        policy.allow.extend(NEVER_COPIED.iter().cloned());
        policy.allow.push(HeaderName::from_static("X-Voxide-Route"));
        for name in NEVER_COPIED {
            assert!(!policy.copies(name), "{name:?}");
        }
        assert!(!policy.copies(&HeaderName::from_static("x-voxide-route")));
        assert!(!policy.copies(&HeaderName::from_static("X-VOXIDE-Source")));
        assert!(!policy.copies(&HeaderName::from_bytes(b"v")), "compact Via");
        assert!(
            !policy.copies(&HeaderName::from_bytes(b"m")),
            "compact Contact"
        );
        assert!(policy.copies(&HeaderName::PAssertedIdentity));
    }

    #[test]
    fn the_default_copies_the_listed_headers_only() {
        let policy = HeaderPolicy::default();
        assert!(policy.copies(&HeaderName::Subject));
        assert!(
            policy.copies(&HeaderName::from_bytes(b"s")),
            "compact Subject"
        );
        assert!(policy.copies(&HeaderName::Reason));
        assert!(!policy.copies(&HeaderName::PAssertedIdentity));
        assert!(!policy.copies(&HeaderName::Privacy));
        assert!(!policy.copies(&HeaderName::from_static("X-Unknown")));
        assert!(
            !policy.copies(&HeaderName::Warning),
            "Warning names the agent's host"
        );
        assert!(policy.knows_option_tag(b"TIMER"));
        assert!(!policy.knows_option_tag(b"100rel"));
        assert!(policy.relays(&Method::Update));
        assert!(!policy.relays(&Method::Refer));
        assert!(policy.allows_method(&Method::Bye));
        assert!(!policy.allows_method(&Method::Prack));
    }

    #[test]
    fn an_allow_listed_extension_header_matches_in_any_case() {
        let mut policy = HeaderPolicy::default();
        policy.allow.push(HeaderName::from_static("X-Carrier-Info"));
        assert!(policy.copies(&HeaderName::from_bytes(b"x-carrier-info")));
    }
}
