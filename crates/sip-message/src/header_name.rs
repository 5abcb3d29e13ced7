//! Interned header names: case-insensitive, compact forms folded into the full name
//! (RFC 3261 §7.3.1, §7.3.3, §20).

use bytes::Bytes;
use std::fmt;
use std::hash::{Hash, Hasher};

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal, $compact:expr, $list:expr; )*) => {
        /// A header field name. Known names are interned variants; compact forms
        /// (`v`, `i`, `f`, …) parse to the same variant as the full name. Unknown names keep
        /// their bytes and compare case-insensitively.
        #[derive(Debug, Clone)]
        pub enum HeaderName {
            $( #[doc = $canonical] $variant, )*
            /// Any other header name, as received.
            Other(Bytes),
        }

        /// Index of each known variant in [`KNOWN_NAMES`].
        #[allow(dead_code, reason = "variants exist to be cast to their index")]
        #[repr(u8)]
        enum KnownIndex { $( $variant, )* }

        impl HeaderName {
            /// Interned id: the index in [`KNOWN_NAMES`], or [`OTHER_ID`].
            pub(crate) fn id(&self) -> u8 {
                match self {
                    $( HeaderName::$variant => KnownIndex::$variant as u8, )*
                    // `Other` built by hand may still spell a known name ("v", "VIA").
                    HeaderName::Other(bytes) if crate::syntax::is_token(bytes) => {
                        HeaderName::lookup_id(bytes)
                    }
                    HeaderName::Other(_) => OTHER_ID,
                }
            }

            /// The canonical full name, as printed for headers this crate writes.
            pub fn as_bytes(&self) -> &[u8] {
                match self {
                    $( HeaderName::$variant => $canonical.as_bytes(), )*
                    HeaderName::Other(bytes) => bytes,
                }
            }

            /// The compact form letter (RFC 3261 §7.3.3 and later RFCs), if the header has one.
            pub fn compact_form(&self) -> Option<u8> {
                match self {
                    $( HeaderName::$variant => $compact, )*
                    HeaderName::Other(_) => None,
                }
            }

            /// Whether the header's grammar is a comma-separated list (RFC 3261 §7.3.1), so
            /// several values may share one line and `header_values` splits them.
            pub fn is_list(&self) -> bool {
                match self {
                    $( HeaderName::$variant => $list, )*
                    HeaderName::Other(_) => false,
                }
            }

            /// The known header at `index` of [`KNOWN_NAMES`].
            fn known_at(index: usize) -> Option<HeaderName> {
                const ALL: &[HeaderName] = &[$( HeaderName::$variant, )*];
                ALL.get(index).cloned()
            }
        }

        /// Canonical names of the known headers, in declaration order.
        const KNOWN_NAMES: &[&str] = &[$( $canonical, )*];
        /// Compact letters of the known headers, in declaration order.
        const KNOWN_COMPACT: &[Option<u8>] = &[$( $compact, )*];
    };
}

header_names! {
    Via => "Via", Some(b'v'), true;
    From => "From", Some(b'f'), false;
    To => "To", Some(b't'), false;
    CallId => "Call-ID", Some(b'i'), false;
    CSeq => "CSeq", None, false;
    MaxForwards => "Max-Forwards", None, false;
    Contact => "Contact", Some(b'm'), true;
    Route => "Route", None, true;
    RecordRoute => "Record-Route", None, true;
    Path => "Path", None, true;
    ServiceRoute => "Service-Route", None, true;
    ContentLength => "Content-Length", Some(b'l'), false;
    ContentType => "Content-Type", Some(b'c'), false;
    ContentEncoding => "Content-Encoding", Some(b'e'), true;
    ContentDisposition => "Content-Disposition", None, false;
    Expires => "Expires", None, false;
    MinExpires => "Min-Expires", None, false;
    Authorization => "Authorization", None, false;
    ProxyAuthorization => "Proxy-Authorization", None, false;
    WwwAuthenticate => "WWW-Authenticate", None, false;
    ProxyAuthenticate => "Proxy-Authenticate", None, false;
    AuthenticationInfo => "Authentication-Info", None, false;
    Supported => "Supported", Some(b'k'), true;
    Require => "Require", None, true;
    ProxyRequire => "Proxy-Require", None, true;
    Unsupported => "Unsupported", None, true;
    Allow => "Allow", None, true;
    Accept => "Accept", None, true;
    AcceptEncoding => "Accept-Encoding", None, true;
    AcceptLanguage => "Accept-Language", None, true;
    SessionExpires => "Session-Expires", Some(b'x'), false;
    MinSe => "Min-SE", None, false;
    Subject => "Subject", Some(b's'), false;
    Event => "Event", Some(b'o'), false;
    AllowEvents => "Allow-Events", Some(b'u'), true;
    SubscriptionState => "Subscription-State", None, false;
    ReferTo => "Refer-To", Some(b'r'), false;
    ReferredBy => "Referred-By", Some(b'b'), false;
    AcceptContact => "Accept-Contact", Some(b'a'), true;
    RejectContact => "Reject-Contact", Some(b'j'), true;
    RequestDisposition => "Request-Disposition", Some(b'd'), true;
    Identity => "Identity", Some(b'y'), false;
    UserAgent => "User-Agent", None, false;
    Server => "Server", None, false;
    Date => "Date", None, false;
    Timestamp => "Timestamp", None, false;
    RetryAfter => "Retry-After", None, false;
    Warning => "Warning", None, true;
    RSeq => "RSeq", None, false;
    RAck => "RAck", None, false;
    PAssertedIdentity => "P-Asserted-Identity", None, true;
    PPreferredIdentity => "P-Preferred-Identity", None, true;
    Privacy => "Privacy", None, false;
    Reason => "Reason", None, true;
    Organization => "Organization", None, false;
    CallInfo => "Call-Info", None, true;
    AlertInfo => "Alert-Info", None, true;
    ErrorInfo => "Error-Info", None, true;
    InReplyTo => "In-Reply-To", None, true;
    ReplyTo => "Reply-To", None, false;
    Priority => "Priority", None, false;
    MimeVersion => "MIME-Version", None, false;
    ContentLanguage => "Content-Language", None, true;
    Diversion => "Diversion", None, true;
    HistoryInfo => "History-Info", None, true;
    Replaces => "Replaces", None, false;
    ReferSub => "Refer-Sub", None, false;
    SipETag => "SIP-ETag", None, false;
    SipIfMatch => "SIP-If-Match", None, false;
    PCalledPartyId => "P-Called-Party-ID", None, false;
    PChargingVector => "P-Charging-Vector", None, false;
    PAccessNetworkInfo => "P-Access-Network-Info", None, true;
    PEarlyMedia => "P-Early-Media", None, true;
    SecurityClient => "Security-Client", None, true;
    SecurityServer => "Security-Server", None, true;
    SecurityVerify => "Security-Verify", None, true;
    FeatureCaps => "Feature-Caps", None, true;
    RecvInfo => "Recv-Info", None, true;
    InfoPackage => "Info-Package", None, false;
}

impl HeaderName {
    /// The interned name for `name` as found on the wire (any case, compact form allowed).
    /// Unknown names are copied into [`HeaderName::Other`].
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        HeaderName::lookup(name).unwrap_or_else(|| HeaderName::Other(Bytes::copy_from_slice(name)))
    }

    /// A header name from a static string, e.g. `HeaderName::from_static("P-Charge-Info")`.
    pub fn from_static(name: &'static str) -> HeaderName {
        HeaderName::lookup(name.as_bytes())
            .unwrap_or_else(|| HeaderName::Other(Bytes::from_static(name.as_bytes())))
    }

    /// The interned id for a name as found on the wire ([`OTHER_ID`] when unknown). `name`
    /// must be a `token`.
    #[inline]
    pub(crate) fn lookup_id(name: &[u8]) -> u8 {
        let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
            return OTHER_ID;
        };
        for &candidate in &LOOKUP[bucket(name.len(), first, last)] {
            if candidate == EMPTY {
                return OTHER_ID;
            }
            let index = usize::from(candidate);
            let matches = if name.len() == 1 {
                KNOWN_COMPACT[index] == Some(first | 0x20)
            } else {
                token_eq_canonical(name, KNOWN_NAMES[index].as_bytes())
            };
            if matches {
                return candidate;
            }
        }
        OTHER_ID
    }

    /// The canonical name for interned id `id` (empty for [`OTHER_ID`]).
    pub(crate) fn canonical_name(id: u8) -> &'static [u8] {
        KNOWN_NAMES
            .get(usize::from(id))
            .map_or(&[], |name| name.as_bytes())
    }

    /// The known header with interned id `id`.
    pub(crate) fn from_id(id: u8) -> Option<HeaderName> {
        HeaderName::known_at(usize::from(id))
    }

    /// The known header for `name`, if any. This runs once per header line on the hot
    /// path, so it hashes length, first and last byte into [`LOOKUP`] and compares at
    /// most [`BUCKET_SIZE`] candidates instead of scanning every known name.
    fn lookup(name: &[u8]) -> Option<HeaderName> {
        // lookup_id relies on its input being a token.
        if !crate::syntax::is_token(name) {
            return None;
        }
        HeaderName::from_id(HeaderName::lookup_id(name))
    }
}

/// Id of every header name that is not interned.
pub(crate) const OTHER_ID: u8 = u8::MAX;

/// Case-insensitive equality of a `token` (already checked by the caller) with a canonical
/// name made of letters and `-`, eight bytes at a time. Setting bit 0x20 folds letters to
/// lower case; every non-letter token byte already has that bit set, and the bytes it would
/// collide with are control characters that are not token bytes, so no false match exists.
#[inline]
fn token_eq_canonical(token: &[u8], canonical: &[u8]) -> bool {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    if token.len() != canonical.len() {
        return false;
    }
    let mut token_chunks = token.chunks_exact(8);
    let mut canonical_chunks = canonical.chunks_exact(8);
    for (a, b) in token_chunks.by_ref().zip(canonical_chunks.by_ref()) {
        let a = u64::from_le_bytes(a.try_into().unwrap_or_default());
        let b = u64::from_le_bytes(b.try_into().unwrap_or_default());
        if a | FOLD != b | FOLD {
            return false;
        }
    }
    token_chunks
        .remainder()
        .iter()
        .zip(canonical_chunks.remainder())
        .all(|(a, b)| a | 0x20 == b | 0x20)
}

const BUCKETS: usize = 256;
const BUCKET_SIZE: usize = 3;
const EMPTY: u8 = u8::MAX;

/// Case-insensitive hash of a header name from its length and end bytes (`| 0x20` folds
/// ASCII letters to lower case and leaves `-` and digits alone).
const fn bucket(length: usize, first: u8, last: u8) -> usize {
    (length.wrapping_mul(37)
        ^ ((first | 0x20) as usize).wrapping_mul(11)
        ^ ((last | 0x20) as usize))
        % BUCKETS
}

/// Known-name hash table, built at compile time; a bucket overflow fails the build.
static LOOKUP: [[u8; BUCKET_SIZE]; BUCKETS] = {
    let mut table = [[EMPTY; BUCKET_SIZE]; BUCKETS];
    let mut index = 0;
    while index < KNOWN_NAMES.len() {
        let name = KNOWN_NAMES[index].as_bytes();
        table = insert(
            table,
            bucket(name.len(), name[0], name[name.len() - 1]),
            index as u8,
        );
        if let Some(letter) = KNOWN_COMPACT[index] {
            table = insert(table, bucket(1, letter, letter), index as u8);
        }
        index += 1;
    }
    table
};

const fn insert(
    mut table: [[u8; BUCKET_SIZE]; BUCKETS],
    bucket: usize,
    value: u8,
) -> [[u8; BUCKET_SIZE]; BUCKETS] {
    let mut slot = 0;
    while slot < BUCKET_SIZE {
        if table[bucket][slot] == EMPTY {
            table[bucket][slot] = value;
            return table;
        }
        slot += 1;
    }
    panic!("header name hash bucket overflow: change the bucket hash");
}

impl PartialEq for HeaderName {
    /// Equal when both intern to the same known header (whatever the spelling), or both
    /// are unknown and match case-insensitively.
    fn eq(&self, other: &HeaderName) -> bool {
        let (a, b) = (self.id(), other.id());
        a == b && (a != OTHER_ID || self.as_bytes().eq_ignore_ascii_case(other.as_bytes()))
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let id = self.id();
        state.write_u8(id);
        if id == OTHER_ID {
            for byte in self.as_bytes() {
                state.write_u8(byte.to_ascii_lowercase());
            }
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&'static str> for HeaderName {
    fn from(name: &'static str) -> HeaderName {
        HeaderName::from_static(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_and_compact_form_resolves() {
        for (index, name) in KNOWN_NAMES.iter().enumerate() {
            let known = HeaderName::known_at(index).unwrap();
            assert_eq!(HeaderName::from_bytes(name.as_bytes()), known);
            assert_eq!(
                HeaderName::from_bytes(name.to_ascii_uppercase().as_bytes()),
                known
            );
            assert_eq!(
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                known
            );
            assert_eq!(known.as_bytes(), name.as_bytes());
            if let Some(letter) = KNOWN_COMPACT[index] {
                assert_eq!(HeaderName::from_bytes(&[letter]), known);
                assert_eq!(
                    HeaderName::from_bytes(&[letter.to_ascii_uppercase()]),
                    known
                );
                assert_eq!(known.compact_form(), Some(letter));
            }
        }
    }

    #[test]
    fn unknown_names_compare_case_insensitively() {
        let name = HeaderName::from_bytes(b"X-Custom");
        assert!(matches!(name, HeaderName::Other(_)));
        assert_eq!(name, HeaderName::from_static("x-CUSTOM"));
        assert_ne!(name, HeaderName::Via);
        assert!(matches!(HeaderName::from_bytes(b"z"), HeaderName::Other(_)));
        assert!(matches!(
            HeaderName::from_bytes(b"Vias"),
            HeaderName::Other(_)
        ));
        assert!(matches!(
            HeaderName::from_bytes(b"C%6Fntact"),
            HeaderName::Other(_)
        ));
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"CALL-id"), HeaderName::CallId);
        assert!(matches!(
            HeaderName::from_bytes(b"Call\rID"),
            HeaderName::Other(_)
        ));
    }

    #[test]
    fn hand_built_other_names_match_known_ones() {
        use std::hash::BuildHasher;
        let hand_built = HeaderName::Other(Bytes::from_static(b"v"));
        assert_eq!(hand_built, HeaderName::Via);
        assert_ne!(hand_built, HeaderName::From);
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(
            state.hash_one(&hand_built),
            state.hash_one(&HeaderName::Via)
        );
        let other = HeaderName::from_static("X-Custom");
        assert_eq!(
            state.hash_one(&other),
            state.hash_one(HeaderName::from_static("x-custom"))
        );
    }
}
