//! Loose routing (RFC 3261 §16.4, §16.12): in-dialog requests and the ACK of a 2xx follow
//! their Route set; our own Via, Record-Route and the loop check (§16.3 step 4).

use sip_core::internal_headers::Source;
use sip_core::proxy_rules::ToTag;

use super::*;

impl Router {
    /// Forwards an in-dialog request statefully to its next hop (§16.12).
    pub(super) async fn forward_in_dialog(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        next_hop: SocketAddr,
        max_forwards: u32,
        parties: CallParties,
    ) {
        let Some(context) = self.servers.get_mut(&transaction) else {
            return;
        };
        context.decided = true;
        context.parties = parties;
        let request = context.request.clone();
        let mut outgoing = request.clone();
        remove_internal_headers(&mut outgoing);
        outgoing.replace_header(
            HeaderName::MaxForwards,
            Bytes::from((max_forwards - 1).to_string()),
        );
        outgoing.push_via(self.own_via(loop_hash(&request)));
        match endpoint
            .send_request(
                outgoing,
                Destination::address(TransportProtocol::Udp, next_hop),
            )
            .await
        {
            Ok(client) => {
                self.clients.insert(client, transaction);
                if let Some(context) = self.servers.get_mut(&transaction) {
                    context.branches.push(Branch {
                        client,
                        final_status: None,
                        timer_c: None,
                        rang_out: false,
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "in-dialog request could not be forwarded");
                let response = local_response(&request, 503, "Service Unavailable").build();
                self.respond(endpoint, transaction, response).await;
            }
        }
    }

    /// Loose-routes an ACK statelessly: pop our Route, new Via with a branch derived from the
    /// incoming one (so a retransmitted ACK gets the same branch, §16.11), send to the next hop.
    pub(super) async fn forward_ack(&mut self, endpoint: &SipEndpoint, mut ack: Message) {
        let max_forwards = ack
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_MAX_FORWARDS);
        if max_forwards == 0 || self.is_loop(&ack) {
            return;
        }
        // Only ACKs of dialogs we record-routed: no open relay.
        if !self.pop_own_routes(&mut ack) {
            return;
        }
        let Some(next_hop) = next_hop(&ack) else {
            return;
        };
        if let Some(media) = self.services.media.clone()
            && has_sdp(&ack)
        {
            // The answer to a late offer (the 2xx carried the offer): the callee offered.
            let roles = Roles {
                is_answer: true,
                offerer_is_to: true,
            };
            match exchange_sdp(&media, &ack, roles, None, None, None).await {
                Ok(sdp) => ack.set_body(sdp),
                Err(error) => tracing::warn!(%error, "media relay answer for an ACK failed"),
            }
        }
        remove_internal_headers(&mut ack);
        ack.replace_header(
            HeaderName::MaxForwards,
            Bytes::from((max_forwards - 1).to_string()),
        );
        let incoming_branch = ack
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(<[u8]>::to_vec))
            .unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        incoming_branch.hash(&mut hasher);
        let via = format!(
            "SIP/2.0/UDP {};branch={BRANCH_PREFIX}a{:016x}",
            self.config.local_addr,
            hasher.finish()
        );
        ack.push_via(Bytes::from(via));
        let destination = Destination::address(TransportProtocol::Udp, next_hop);
        if let Err(error) = endpoint.send_stateless(&ack, &destination).await {
            tracing::debug!(%error, "ACK could not be forwarded");
        }
    }

    pub(super) fn own_via(&self, loop_hash: u64) -> Bytes {
        let random = hex::encode(rand::random::<[u8; 8]>());
        Bytes::from(format!(
            "SIP/2.0/UDP {};branch={BRANCH_PREFIX}{loop_hash:016x}.{random}",
            self.config.local_addr
        ))
    }

    pub(super) fn own_record_route(&self) -> Bytes {
        Bytes::from(format!("<sip:{};lr>", self.config.local_addr))
    }

    pub(super) fn is_own_via(&self, via: &sip_message::Via<'_>) -> bool {
        via.host.ip() == Some(self.config.local_addr.ip())
            && via.port.unwrap_or(5060) == self.config.local_addr.port()
    }

    pub(super) fn is_own_uri(&self, uri: &Uri<'_>) -> bool {
        uri.host.ip() == Some(self.config.local_addr.ip())
            && uri.port.unwrap_or(5060) == self.config.local_addr.port()
    }

    /// §16.3 step 4: one of the Vias is ours with the hash of this very request.
    pub(super) fn is_loop(&self, request: &Message) -> bool {
        let expected = format!("{BRANCH_PREFIX}{:016x}.", loop_hash(request));
        request.vias().filter_map(Result::ok).any(|via| {
            self.is_own_via(&via)
                && via
                    .branch()
                    .is_some_and(|branch| branch.starts_with(expected.as_bytes()))
        })
    }

    /// Removes the top Route entries that name this proxy (§16.4); `true` when one did.
    pub(super) fn pop_own_routes(&self, request: &mut Message) -> bool {
        let mut popped = false;
        loop {
            let ours = request
                .routes()
                .next()
                .and_then(Result::ok)
                .is_some_and(|route| self.is_own_uri(&route.uri));
            if !ours {
                return popped;
            }
            request.remove_first_value(&HeaderName::Route);
            popped = true;
        }
    }
}

/// The real source of a request: the trusted load balancer's `X-Voxide-Source`, else the flow.
pub fn real_source(request: &Message, flow: &Flow, trusted: &[IpAddr]) -> SocketAddr {
    if !trusted.contains(&flow.remote.ip()) {
        return flow.remote;
    }
    Source::from_message(request).map_or(flow.remote, |source| source.address)
}

/// The loop-detection hash of §16.6 step 8 over the request as received (this proxy is
/// stateful: the To tag counts).
pub(super) fn loop_hash(request: &Message) -> u64 {
    sip_core::proxy_rules::loop_hash(request, ToTag::Hashed)
}

/// Where a loose-routed request goes: its top Route, else its Request-URI (§16.12).
pub(super) fn next_hop(request: &Message) -> Option<SocketAddr> {
    match request.routes().next() {
        Some(route) => {
            let route: NameAddr<'_> = route.ok()?;
            uri_socket_address(&route.uri)
        }
        None => uri_socket_address(&request.request_uri()?.ok()?),
    }
}

/// The address of a URI naming an IP host (this proxy does no DNS, RFC 3263).
pub(super) fn uri_socket_address(uri: &Uri<'_>) -> Option<SocketAddr> {
    let ip = match uri.param(b"maddr") {
        Some(Some(maddr)) => std::str::from_utf8(maddr).ok()?.parse().ok()?,
        _ => uri.host.ip()?,
    };
    Some(SocketAddr::new(ip, uri.port.unwrap_or(5060)))
}

pub(super) fn uri_address(uri: &str) -> Option<SocketAddr> {
    uri_socket_address(&Uri::parse(uri.as_bytes()).ok()?)
}

/// `<sip:…>;params` → `sip:…` (a Path value as stored).
pub(super) fn strip_angle_brackets(value: &str) -> &str {
    let value = value.trim();
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value,
    }
}

pub(super) fn request_is_out_of_dialog(request: &Message) -> bool {
    request.to().is_ok_and(|to| to.tag().is_none())
}

pub(super) fn request_uri_has_no_user(request: &Message) -> bool {
    request
        .request_uri()
        .and_then(Result::ok)
        .is_some_and(|uri| {
            uri.user
                .is_none_or(|user| Unescaped::new(user).next().is_none())
        })
}
