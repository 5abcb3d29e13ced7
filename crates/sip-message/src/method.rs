//! SIP request methods (RFC 3261 §7.1, §27.4).

use bytes::Bytes;
use std::fmt;

/// A request method. Matching is case-sensitive (RFC 3261 §7.1): `invite` is an extension
/// method, not INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token, kept as received.
    Extension(Bytes),
}

impl Method {
    /// The known method spelled exactly by `bytes`, if any (no allocation).
    pub fn known(bytes: &[u8]) -> Option<Method> {
        Some(match bytes {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => return None,
        })
    }

    /// The method for `bytes`; unknown tokens become [`Method::Extension`] (copied).
    /// The caller checks token syntax; see [`crate::syntax::is_token`].
    pub fn from_bytes(bytes: &[u8]) -> Method {
        Method::known(bytes).unwrap_or_else(|| Method::Extension(Bytes::copy_from_slice(bytes)))
    }

    /// Like [`Method::from_bytes`] but an extension method shares `source` instead of copying.
    pub(crate) fn from_shared(source: &Bytes, bytes: &[u8]) -> Method {
        Method::known(bytes).unwrap_or_else(|| Method::Extension(source.slice_ref(bytes)))
    }

    /// The method as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Register => b"REGISTER",
            Method::Options => b"OPTIONS",
            Method::Info => b"INFO",
            Method::Update => b"UPDATE",
            Method::Prack => b"PRACK",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Refer => b"REFER",
            Method::Message => b"MESSAGE",
            Method::Publish => b"PUBLISH",
            Method::Extension(bytes) => bytes,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}
