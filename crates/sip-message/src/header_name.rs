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

        impl HeaderName {
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

            fn known_ignore_case(name: &[u8]) -> Option<HeaderName> {
                $(
                    if name.eq_ignore_ascii_case($canonical.as_bytes()) {
                        return Some(HeaderName::$variant);
                    }
                )*
                None
            }

            fn from_compact(letter: u8) -> Option<HeaderName> {
                let letter = letter.to_ascii_lowercase();
                $(
                    if $compact == Some(letter) {
                        return Some(HeaderName::$variant);
                    }
                )*
                None
            }
        }
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
}

impl HeaderName {
    /// The interned name for `name` as found on the wire (any case, compact form allowed).
    /// Unknown names are copied into [`HeaderName::Other`].
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        HeaderName::lookup(name).unwrap_or_else(|| HeaderName::Other(Bytes::copy_from_slice(name)))
    }

    /// Like [`HeaderName::from_bytes`], sharing `source` for unknown names instead of copying.
    pub(crate) fn from_shared(source: &Bytes, name: &[u8]) -> HeaderName {
        HeaderName::lookup(name).unwrap_or_else(|| HeaderName::Other(source.slice_ref(name)))
    }

    /// A header name from a static string, e.g. `HeaderName::from_static("P-Charge-Info")`.
    pub fn from_static(name: &'static str) -> HeaderName {
        HeaderName::lookup(name.as_bytes())
            .unwrap_or_else(|| HeaderName::Other(Bytes::from_static(name.as_bytes())))
    }

    /// The known header for `name`, if any. Dispatches on length and first letter first,
    /// because this runs once per header line on the hot path.
    fn lookup(name: &[u8]) -> Option<HeaderName> {
        match name.len() {
            0 => None,
            1 => HeaderName::from_compact(name[0]),
            _ => HeaderName::known_ignore_case(name),
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in self.as_bytes() {
            state.write_u8(byte.to_ascii_lowercase());
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
