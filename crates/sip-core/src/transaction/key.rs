//! Matching keys for transactions (RFC 3261 §17.1.3 and §17.2.3).

use bytes::{BufMut, Bytes, BytesMut};
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

    /// The same key holding no part of the message it was built from (see
    /// [`ServerKey::detached`]).
    pub(crate) fn detached(&self) -> Self {
        Self {
            branch: Bytes::copy_from_slice(&self.branch),
            method: detached_method(&self.method),
        }
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
    /// RFC 2543 fallback (RFC 3261 §17.2.3, second half). Boxed: it is rare, and inline it
    /// would double the size of every key the layer stores.
    Rfc2543(Box<Rfc2543Key>),
}

/// The RFC 2543 key (RFC 3261 §17.2.3, second half): Request-URI, To tag, From tag, Call-ID,
/// CSeq number and method, top Via — all compared as raw bytes, since a retransmission repeats
/// them byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rfc2543Key {
    /// The Request-URI.
    pub request_uri: Bytes,
    /// The To tag of the request, if any. For an ACK it is looked up both as given and as
    /// absent (the INVITE had none; the ACK carries the tag of our response).
    pub to_tag: Option<Bytes>,
    /// The From tag, if any.
    pub from_tag: Option<Bytes>,
    /// Call-ID.
    pub call_id: Bytes,
    /// CSeq number.
    pub cseq_number: u32,
    /// The request method, INVITE for ACK.
    pub method: Method,
    /// The whole top Via value.
    pub top_via: Bytes,
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
        Ok(ServerKey::Rfc2543(Box::new(Rfc2543Key {
            request_uri,
            to_tag: to.tag().map(|tag| share(request, tag)),
            from_tag: from.tag().map(|tag| share(request, tag)),
            call_id: share(request, call_id),
            cseq_number: cseq.number,
            method,
            top_via,
        })))
    }

    /// The same key with another method: a CANCEL's key with INVITE names the INVITE
    /// transaction it cancels (RFC 3261 §9.2).
    pub fn with_method(&self, method: Method) -> Self {
        let mut key = self.clone();
        match &mut key {
            ServerKey::Branch { method: m, .. } => *m = method,
            ServerKey::Rfc2543(key) => key.method = method,
        }
        key
    }

    /// The same key without a To tag (RFC 2543 ACK lookup); `None` for a branch key or a key
    /// that already has no To tag.
    pub(crate) fn without_to_tag(&self) -> Option<Self> {
        match self {
            ServerKey::Rfc2543(key) if key.to_tag.is_some() => {
                let mut key = key.clone();
                key.to_tag = None;
                Some(ServerKey::Rfc2543(key))
            }
            _ => None,
        }
    }

    /// The To tag of an RFC 2543 key.
    pub(crate) fn to_tag(&self) -> Option<&Bytes> {
        match self {
            ServerKey::Rfc2543(key) => key.to_tag.as_ref(),
            ServerKey::Branch { .. } => None,
        }
    }

    /// The method the key matches.
    pub fn method(&self) -> &Method {
        match self {
            ServerKey::Branch { method, .. } => method,
            ServerKey::Rfc2543(key) => &key.method,
        }
    }

    /// The same key with every byte field copied into one small buffer of its own. Keys built
    /// from a request share its datagram (no allocation per lookup); a key stored for the life
    /// of a transaction is detached so the datagram can be freed with the request.
    pub(crate) fn detached(&self) -> Self {
        let mut packer = Packer::default();
        match self {
            ServerKey::Branch {
                branch,
                sent_by,
                method,
            } => {
                packer.reserve(&[branch, &sent_by.host]);
                ServerKey::Branch {
                    branch: packer.pack(branch),
                    sent_by: SentBy {
                        host: packer.pack(&sent_by.host),
                        port: sent_by.port,
                    },
                    method: detached_method(method),
                }
            }
            ServerKey::Rfc2543(key) => {
                let Rfc2543Key {
                    request_uri,
                    to_tag,
                    from_tag,
                    call_id,
                    cseq_number,
                    method,
                    top_via,
                } = key.as_ref();
                let empty = Bytes::new();
                packer.reserve(&[
                    request_uri,
                    to_tag.as_ref().unwrap_or(&empty),
                    from_tag.as_ref().unwrap_or(&empty),
                    call_id,
                    top_via,
                ]);
                ServerKey::Rfc2543(Box::new(Rfc2543Key {
                    request_uri: packer.pack(request_uri),
                    to_tag: to_tag.as_ref().map(|tag| packer.pack(tag)),
                    from_tag: from_tag.as_ref().map(|tag| packer.pack(tag)),
                    call_id: packer.pack(call_id),
                    cseq_number: *cseq_number,
                    method: detached_method(method),
                    top_via: packer.pack(top_via),
                }))
            }
        }
    }
}

/// An extension method holds a slice of the request; standard methods hold nothing.
fn detached_method(method: &Method) -> Method {
    match method {
        Method::Extension(name) => Method::Extension(Bytes::copy_from_slice(name)),
        method => method.clone(),
    }
}

/// Copies several byte strings into one allocation and hands out slices of it.
#[derive(Default)]
struct Packer {
    buffer: BytesMut,
}

impl Packer {
    fn reserve(&mut self, parts: &[&Bytes]) {
        self.buffer
            .reserve(parts.iter().map(|part| part.len()).sum());
    }

    fn pack(&mut self, part: &[u8]) -> Bytes {
        // Within the reserved capacity this never reallocates, so every slice handed out shares
        // the one allocation.
        self.buffer.put_slice(part);
        self.buffer.split().freeze()
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
    fn a_detached_key_equals_the_original_and_holds_no_part_of_the_request() {
        let request = invite();
        let rfc2543 = parse(
            "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=1234
To: Bob <sip:bob@biloxi.example.com>;tag=totag
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Content-Length: 0

",
        );
        for request in [request, rfc2543] {
            let key = ServerKey::from_request(&request).unwrap();
            let detached = key.detached();
            assert_eq!(detached, key);
            let buffer = request.as_bytes().as_ptr_range();
            let outside = |bytes: &Bytes| !buffer.contains(&bytes.as_ptr());
            match &detached {
                ServerKey::Branch {
                    branch, sent_by, ..
                } => assert!(outside(branch) && outside(&sent_by.host)),
                ServerKey::Rfc2543(key) => {
                    let Rfc2543Key {
                        request_uri,
                        to_tag,
                        from_tag,
                        call_id,
                        top_via,
                        ..
                    } = key.as_ref();
                    assert!(outside(request_uri) && outside(call_id) && outside(top_via));
                    assert!(
                        outside(to_tag.as_ref().unwrap()) && outside(from_tag.as_ref().unwrap())
                    );
                }
            }
        }
    }

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
        let ServerKey::Rfc2543(rfc2543) = &key else {
            panic!("expected an RFC 2543 key, got {key:?}");
        };
        let Rfc2543Key {
            request_uri,
            to_tag,
            from_tag,
            call_id,
            cseq_number,
            method,
            top_via,
        } = rfc2543.as_ref();
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
