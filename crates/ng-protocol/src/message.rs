//! ng message framing: `<cookie> <payload>` in one datagram (ng-protocol.md §1).

use crate::bencode::Value;

/// One framed ng message, borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgMessage<'a> {
    /// Everything before the first space; unique per request, repeated on retransmissions.
    pub cookie: &'a [u8],
    /// Everything after the first space (normally a bencode dictionary).
    pub payload: &'a [u8],
}

/// A datagram that is not an ng message at all. rtpengine drops these without a reply,
/// since there is no cookie to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("ng datagram has no space separating cookie and payload")]
    NoSeparator,
    #[error("ng datagram has an empty cookie")]
    EmptyCookie,
}

/// Splits a datagram at its first space.
///
/// # Errors
/// [`FramingError`] when there is no space or the cookie is empty.
pub fn split_message(datagram: &[u8]) -> Result<NgMessage<'_>, FramingError> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or(FramingError::NoSeparator)?;
    if space == 0 {
        return Err(FramingError::EmptyCookie);
    }
    Ok(NgMessage {
        cookie: &datagram[..space],
        payload: &datagram[space + 1..],
    })
}

/// Frames a reply: the request's cookie, one space, the encoded dictionary.
#[must_use]
pub fn frame_reply(cookie: &[u8], reply: &Value<'_>) -> Vec<u8> {
    frame(cookie, reply)
}

/// Frames a request (client side): a cookie unique to this request, one space, the encoded
/// dictionary (e.g. [`crate::NgCommand::to_value`]). A retransmission resends these very bytes.
#[must_use]
pub fn frame_request(cookie: &[u8], request: &Value<'_>) -> Vec<u8> {
    frame(cookie, request)
}

fn frame(cookie: &[u8], dictionary: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    dictionary.encode_into(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_space_only() {
        let message = split_message(b"5323_1 d7:command4:pinge").unwrap();
        assert_eq!(message.cookie, b"5323_1");
        assert_eq!(message.payload, b"d7:command4:pinge");
        let message = split_message(b"c d3:sdp3:a be").unwrap();
        assert_eq!(message.payload, b"d3:sdp3:a be");
    }

    #[test]
    fn refuses_datagrams_without_cookie() {
        assert_eq!(split_message(b"nospace"), Err(FramingError::NoSeparator));
        assert_eq!(split_message(b" d4:spame"), Err(FramingError::EmptyCookie));
    }

    #[test]
    fn a_framed_request_splits_back_into_cookie_and_payload() {
        let request = Value::Dict(vec![(b"command".as_slice().into(), Value::string("ping"))]);
        let datagram = frame_request(b"ab12_7", &request);
        assert_eq!(datagram, b"ab12_7 d7:command4:pinge");
        let message = split_message(&datagram).unwrap();
        assert_eq!(message.cookie, b"ab12_7");
        assert_eq!(message.payload, request.encode());
    }

    #[test]
    fn frames_reply_with_cookie() {
        let reply = Value::Dict(vec![(b"result".as_slice().into(), Value::string("pong"))]);
        assert_eq!(frame_reply(b"5323_1", &reply), b"5323_1 d6:result4:ponge");
    }
}
