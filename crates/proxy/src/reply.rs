//! What the proxy answers and sends on its own: local responses (RFC 3261 §8.2.6), final
//! responses in a server transaction, and responses forwarded without one (§16.7 step 10).

use bytes::Bytes;
use sip_core::transaction::TransactionId;
use sip_message::{Message, MessageBuilder};
use sip_net::{Destination, SipEndpoint, TransportProtocol};

/// A response generated here (not forwarded): Via, From, To, Call-ID and CSeq copied, a To tag
/// added when the request had none (RFC 3261 §8.2.6.2).
pub fn local_response(request: &Message, status: u16, reason: &str) -> MessageBuilder {
    let builder = MessageBuilder::response_to(request, status, Bytes::from(reason.to_owned()));
    let has_to_tag = request.to().is_ok_and(|to| to.tag().is_some());
    if has_to_tag {
        builder
    } else {
        builder.to_tag(hex::encode(rand::random::<[u8; 8]>()))
    }
}

/// Sends a final response; a transaction that has ended meanwhile is only logged.
pub async fn send_final(endpoint: &SipEndpoint, transaction: TransactionId, response: Message) {
    if let Err(error) = endpoint.send_response(transaction, response).await {
        tracing::debug!(%error, "response could not be sent");
    }
}

/// Sends a response (our Via already popped) to the address its top Via names
/// (RFC 3261 §18.2.2 with RFC 3581 `received`/`rport`).
pub async fn forward_response_statelessly(endpoint: &SipEndpoint, response: Message) {
    let Some(address) = response.top_via().ok().and_then(|via| {
        sip_core::response_routing::request_source(&via).map(|(_, address)| address)
    }) else {
        return;
    };
    let destination = Destination::address(TransportProtocol::Udp, address);
    if let Err(error) = endpoint.send_stateless(&response, &destination).await {
        tracing::debug!(%error, "response could not be forwarded");
    }
}
