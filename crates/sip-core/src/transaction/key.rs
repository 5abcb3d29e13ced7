//! Matching keys for transactions (RFC 3261 §17.1.3 and §17.2.3).

use bytes::Bytes;
use sip_message::{Message, Method};

/// The branch prefix that marks an RFC 3261 branch, unique across space and time (RFC 3261
/// §8.1.1.7). A branch without it came from an RFC 2543 element.
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// A header needed to match a message to a transaction is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The header is absent or does not parse.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// A response (or a request we send) whose top Via has no branch: nothing to match on
    /// (RFC 3261 §17.1.3).
    #[error("the top Via has no branch parameter")]
    MissingBranch,
    /// A request was expected.
    #[error("the message is not a request")]
    NotARequest,
}

/// The key of a client transaction: the top Via branch and the CSeq method of the request
/// (RFC 3261 §17.1.3). The CSeq method tells a CANCEL apart from the INVITE it cancels, both
/// carrying the same branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The branch parameter of the top Via, compared exactly.
    pub branch: Bytes,
    /// The method in CSeq.
    pub method: Method,
}

impl ClientKey {
    /// The key of a request we send or of a response we receive (RFC 3261 §17.1.3).
    pub fn from_message(message: &Message) -> Result<Self, KeyError> {
        let via = message.top_via().map_err(|_| KeyError::Header("Via"))?;
        let branch = via.branch().ok_or(KeyError::MissingBranch)?;
        let branch = share(message, branch);
        let cseq = message.cseq().map_err(|_| KeyError::Header("CSeq"))?;
        Ok(Self {
            branch,
            method: cseq.method.clone(),
        })
    }
}

/// The sent-by of a Via (RFC 3261 §18.2.1): host compared case-insensitively (kept lowercased
/// here) and port as written (absent stays absent; §17.2.3 compares the values as they are).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentBy {
    /// Host, lowercased.
    pub host: Bytes,
    /// Port, when the Via names one.
    pub port: Option<u16>,
}

/// The key of a server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    /// The request carries an RFC 3261 branch (magic cookie): branch, sent-by and method, with
    /// ACK folded into INVITE so that it finds the INVITE transaction.
    Branch {
        /// The top Via branch, compared exactly.
        branch: Bytes,
        /// The top Via sent-by.
        sent_by: SentBy,
        /// The request method, INVITE for ACK.
        method: Method,
    },
    /// RFC 2543 fallback (RFC 3261 §17.2.3, second half): Request-URI, To tag, From tag,
    /// Call-ID, CSeq number and method, top Via — all compared as raw bytes, since a
    /// retransmission repeats them byte for byte.
    Rfc2543 {
        /// The Request-URI.
        request_uri: Bytes,
        /// The To tag of the request, if any. For an ACK it is looked up both as given and as
        /// absent (the INVITE had none; the ACK carries the tag of our response).
        to_tag: Option<Bytes>,
        /// The From tag, if any.
        from_tag: Option<Bytes>,
        /// Call-ID.
        call_id: Bytes,
        /// CSeq number.
        cseq_number: u32,
        /// The request method, INVITE for ACK.
        method: Method,
        /// The whole top Via value.
        top_via: Bytes,
    },
}

impl ServerKey {
    /// The key of an incoming request (RFC 3261 §17.2.3).
    pub fn from_request(request: &Message) -> Result<Self, KeyError> {
        let method = request.method().ok_or(KeyError::NotARequest)?;
        let method = if *method == Method::Ack {
            Method::Invite
        } else {
            method.clone()
        };
        let via = request.top_via().map_err(|_| KeyError::Header("Via"))?;
        // Every server transaction answers with the request's CSeq (§8.2.6.2); without a
        // readable one there is nothing valid to send back.
        let cseq = request.cseq().map_err(|_| KeyError::Header("CSeq"))?;
        if let Some(branch) = via.branch()
            && branch.starts_with(MAGIC_COOKIE)
        {
            let sent_by = SentBy {
                host: lowercase(request, via.host.as_bytes()),
                port: via.port,
            };
            return Ok(ServerKey::Branch {
                branch: share(request, branch),
                sent_by,
                method,
            });
        }
        let request_uri = request_uri_bytes(request)?;
        let to = request.to().map_err(|_| KeyError::Header("To"))?;
        let from = request.from().map_err(|_| KeyError::Header("From"))?;
        let call_id = request.call_id().map_err(|_| KeyError::Header("Call-ID"))?;
        let top_via = share(request, via.raw);
        Ok(ServerKey::Rfc2543 {
            request_uri,
            to_tag: to.tag().map(|tag| share(request, tag)),
            from_tag: from.tag().map(|tag| share(request, tag)),
            call_id: share(request, call_id),
            cseq_number: cseq.number,
            method,
            top_via,
        })
    }

    /// The same key with another method: a CANCEL's key with INVITE names the INVITE
    /// transaction it cancels (RFC 3261 §9.2).
    pub fn with_method(&self, method: Method) -> Self {
        let mut key = self.clone();
        match &mut key {
            ServerKey::Branch { method: m, .. } | ServerKey::Rfc2543 { method: m, .. } => {
                *m = method;
            }
        }
        key
    }

    /// The same key without a To tag (RFC 2543 ACK lookup); `None` for a branch key or a key
    /// that already has no To tag.
    pub(crate) fn without_to_tag(&self) -> Option<Self> {
        match self {
            ServerKey::Rfc2543 {
                to_tag: Some(_), ..
            } => {
                let mut key = self.clone();
                if let ServerKey::Rfc2543 { to_tag, .. } = &mut key {
                    *to_tag = None;
                }
                Some(key)
            }
            _ => None,
        }
    }

    /// The To tag of an RFC 2543 key.
    pub(crate) fn to_tag(&self) -> Option<&Bytes> {
        match self {
            ServerKey::Rfc2543 { to_tag, .. } => to_tag.as_ref(),
            ServerKey::Branch { .. } => None,
        }
    }

    /// The method the key matches.
    pub fn method(&self) -> &Method {
        match self {
            ServerKey::Branch { method, .. } | ServerKey::Rfc2543 { method, .. } => method,
        }
    }
}

/// The Request-URI as written on the request line.
fn request_uri_bytes(request: &Message) -> Result<Bytes, KeyError> {
    request
        .request_uri_bytes()
        .map(|uri| share(request, uri))
        .ok_or(KeyError::Header("Request-URI"))
}

/// `part` as a `Bytes` that shares the message buffer when it lies inside it (the usual case:
/// a parsed, unedited header), else a copy. Keys are built for every incoming message, so
/// avoiding the allocation matters.
fn share(message: &Message, part: &[u8]) -> Bytes {
    let buffer = message.as_bytes();
    let start = buffer.as_ptr() as usize;
    let part_start = part.as_ptr() as usize;
    if part_start >= start && part_start + part.len() <= start + buffer.len() {
        buffer.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// The host lowercased, shared with the message when it already is.
fn lowercase(message: &Message, host: &[u8]) -> Bytes {
    if host.iter().any(u8::is_ascii_uppercase) {
        Bytes::from(host.to_ascii_lowercase())
    } else {
        share(message, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::*;

    #[test]
    fn client_key_of_request_and_response_agree() {
        let request = invite();
        let from_request = ClientKey::from_message(&request).unwrap();
        let from_response = ClientKey::from_message(&response(&request, 180)).unwrap();
        assert_eq!(from_request, from_response);
        assert_eq!(from_request.method, Method::Invite);
        assert_eq!(&from_request.branch[..], b"z9hG4bK776asdhds");
    }

    #[test]
    fn cancel_has_its_own_client_key() {
        let invite_key = ClientKey::from_message(&invite()).unwrap();
        let cancel = request("CANCEL", "z9hG4bK776asdhds");
        let cancel_key = ClientKey::from_message(&cancel).unwrap();
        assert_eq!(invite_key.branch, cancel_key.branch);
        assert_ne!(invite_key, cancel_key);
    }

    #[test]
    fn server_key_folds_ack_into_invite() {
        let invite_key = ServerKey::from_request(&invite()).unwrap();
        let ack_key = ServerKey::from_request(&request("ACK", "z9hG4bK776asdhds")).unwrap();
        assert_eq!(invite_key, ack_key);
        let cancel_key = ServerKey::from_request(&request("CANCEL", "z9hG4bK776asdhds")).unwrap();
        assert_ne!(cancel_key, invite_key);
        assert_eq!(cancel_key.with_method(Method::Invite), invite_key);
    }

    #[test]
    fn server_key_compares_sent_by_host_without_case() {
        let lower = ServerKey::from_request(&invite()).unwrap();
        let upper = parse(
            &String::from_utf8(invite().to_bytes().to_vec())
                .unwrap()
                .replace("\r\n", "\n")
                .replace(
                    "pc33.atlanta.example.com:5060",
                    "PC33.Atlanta.example.COM:5060",
                ),
        );
        assert_eq!(ServerKey::from_request(&upper).unwrap(), lower);
        let other_port = parse(
            &String::from_utf8(invite().to_bytes().to_vec())
                .unwrap()
                .replace("\r\n", "\n")
                .replace(
                    "pc33.atlanta.example.com:5060",
                    "pc33.atlanta.example.com:5062",
                ),
        );
        assert_ne!(ServerKey::from_request(&other_port).unwrap(), lower);
    }

    #[test]
    fn branch_without_magic_cookie_falls_back_to_rfc_2543_matching() {
        let old = request("INVITE", "oldbranch1");
        let key = ServerKey::from_request(&old).unwrap();
        let ServerKey::Rfc2543 {
            request_uri,
            to_tag,
            from_tag,
            call_id,
            cseq_number,
            method,
            top_via,
        } = &key
        else {
            panic!("expected an RFC 2543 key, got {key:?}");
        };
        assert_eq!(&request_uri[..], b"sip:bob@biloxi.example.com");
        assert_eq!(to_tag, &None);
        assert_eq!(from_tag.as_deref(), Some(&b"1928301774"[..]));
        assert_eq!(&call_id[..], b"a84b4c76e66710@pc33.atlanta.example.com");
        assert_eq!(*cseq_number, 314159);
        assert_eq!(*method, Method::Invite);
        assert_eq!(
            &top_via[..],
            b"SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=oldbranch1"
        );
    }

    #[test]
    fn missing_headers_are_typed_errors() {
        let no_via = parse(
            "OPTIONS sip:bob@biloxi.example.com SIP/2.0
To: <sip:bob@biloxi.example.com>
From: <sip:alice@atlanta.example.com>;tag=1
Call-ID: x
CSeq: 1 OPTIONS
Content-Length: 0

",
        );
        assert_eq!(
            ServerKey::from_request(&no_via),
            Err(KeyError::Header("Via"))
        );
        assert_eq!(
            ClientKey::from_message(&no_via),
            Err(KeyError::Header("Via"))
        );
        let no_branch = parse(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.example.com
To: <sip:bob@biloxi.example.com>;tag=2
From: <sip:alice@atlanta.example.com>;tag=1
Call-ID: x
CSeq: 1 OPTIONS
Content-Length: 0

",
        );
        assert_eq!(
            ClientKey::from_message(&no_branch),
            Err(KeyError::MissingBranch)
        );
        assert_eq!(
            ServerKey::from_request(&no_branch),
            Err(KeyError::NotARequest)
        );
    }
}
