//! The media session of a call: offer/answer/delete with the relay (Kamailio's
//! `rtpengine_manage()`), the confirmed dialogs it is asked about, and ending a call the
//! relay dropped for lack of media.

use super::*;

impl Router {
    /// Offer for a re-INVITE or UPDATE with SDP, delete for BYE, and dialog bookkeeping.
    /// `false` when the request has been answered here (the relay refused the offer).
    pub(super) async fn in_dialog_media(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        request: &Message,
        source: SocketAddr,
    ) -> bool {
        let Some(media) = self.services.media.clone() else {
            return true;
        };
        let call_id = call_id_text(request);
        if let Some(dialog) = self.media_dialogs.get_mut(&call_id) {
            dialog.observe_request(request);
        }
        match request.method() {
            Some(Method::Bye) => {
                self.media_dialogs.remove(&call_id);
                self.spawn_media_delete(&call_id);
            }
            Some(Method::Invite | Method::Update) if has_sdp(request) => {
                let roles = Roles {
                    is_answer: false,
                    offerer_is_to: false,
                };
                match exchange_sdp(&media, request, roles, None, Some(source.ip()), None).await {
                    Ok(sdp) => {
                        if let Some(context) = self.servers.get_mut(&transaction) {
                            context.request.set_body(sdp);
                            context.media_engaged = true;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, call_id, "media relay refused a re-offer");
                        let response = media_failure_response(request, &error);
                        self.respond(endpoint, transaction, response).await;
                        return false;
                    }
                }
            }
            _ => {}
        }
        true
    }

    /// Puts a 18x/2xx's SDP through the relay: `answer`, or `offer` when the request had no
    /// SDP (late offer). `true` when the relay took it. A relay failure leaves the SDP as it is
    /// (the call goes on without the relay) and is logged.
    pub(super) async fn media_for_response(
        &mut self,
        response: &mut Message,
        request_had_sdp: bool,
    ) -> bool {
        let Some(media) = self.services.media.clone() else {
            return false;
        };
        let relevant = matches!(response.status(), Some(101..=299))
            && response
                .cseq()
                .is_ok_and(|cseq| matches!(cseq.method, Method::Invite | Method::Update))
            && has_sdp(response);
        if !relevant {
            return false;
        }
        let roles = Roles {
            is_answer: request_had_sdp,
            offerer_is_to: !request_had_sdp,
        };
        let branch = response
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(<[u8]>::to_vec));
        match exchange_sdp(
            &media,
            response,
            roles,
            branch.as_deref(),
            None,
            Some("callee"),
        )
        .await
        {
            Ok(sdp) => {
                response.set_body(sdp);
                true
            }
            Err(error) => {
                tracing::error!(%error, "media relay refused the SDP of a response: passed on as it is");
                false
            }
        }
    }

    /// Records the dialog an initial INVITE's first 2xx confirmed, when its media goes
    /// through the relay.
    pub(super) fn remember_media_dialog(&mut self, server: TransactionId, response: &Message) {
        let Some(context) = self.servers.get(&server) else {
            return;
        };
        if !context.media_engaged
            || context.method != Method::Invite
            || !request_is_out_of_dialog(&context.request)
        {
            return;
        }
        let local = self.config.local_addr;
        let is_own = |uri: &Uri<'_>| {
            uri.host.ip() == Some(local.ip()) && uri.port.unwrap_or(5060) == local.port()
        };
        match Dialog::confirmed(&context.request, response, is_own) {
            Ok(dialog) => {
                if self.media_dialogs.len() >= MAX_REMEMBERED_DIALOGS {
                    tracing::warn!("too many confirmed calls: media check skips a new one");
                    return;
                }
                if self.next_media_check.is_none() {
                    self.next_media_check = Some(Instant::now() + self.config.media_check_interval);
                }
                self.media_dialogs.insert(dialog.call_id.clone(), dialog);
            }
            Err(error) => tracing::debug!(%error, "no dialog state for the media check"),
        }
    }

    pub(super) fn spawn_media_delete(&self, call_id: &str) {
        let Some(media) = self.services.media.clone() else {
            return;
        };
        let call_id = call_id.to_owned();
        tokio::spawn(async move {
            if let Err(error) = media.delete(&call_id).await {
                tracing::warn!(%error, call_id, "media relay delete failed");
            }
        });
    }

    /// Asks the relay about every confirmed call in a task of its own; the calls it no
    /// longer knows come back as [`Work::MediaChecked`].
    pub(super) fn start_media_check(&mut self) {
        let Some(media) = self.services.media.clone() else {
            return;
        };
        if self.media_check_running || self.media_dialogs.is_empty() {
            return;
        }
        self.media_check_running = true;
        let call_ids: Vec<String> = self.media_dialogs.keys().cloned().collect();
        let work = self.work.clone();
        tokio::spawn(async move {
            let mut gone = Vec::new();
            for call_id in call_ids {
                match media.query(&call_id).await {
                    Ok(_) => {}
                    Err(error) if error.is_unknown_call() => gone.push(call_id),
                    Err(NgClientError::Refused(reason)) => {
                        tracing::debug!(reason, call_id, "media query refused");
                    }
                    Err(error) => {
                        // The relay is unreachable: that says nothing about the calls.
                        tracing::warn!(%error, "media check stopped");
                        break;
                    }
                }
            }
            let _ = work.send(Work::MediaChecked { gone });
        });
    }

    /// Ends a call the relay dropped for lack of media: BYE to the callee and to the caller,
    /// each on behalf of the other, and the stop record.
    pub(super) async fn end_call(&mut self, endpoint: &SipEndpoint, mut dialog: Dialog) {
        tracing::info!(
            call_id = dialog.call_id,
            "media timeout: ending the call with BYE"
        );
        for side in [Side::Callee, Side::Caller] {
            let (mut bye, next_hop) = dialog.bye(side, "Media Timeout");
            let Some(destination) = uri_address(&next_hop) else {
                tracing::warn!(next_hop, "BYE target not reachable by IP");
                continue;
            };
            bye.push_via(self.own_via(rand::random()));
            if let Err(error) = endpoint
                .send_request(
                    bye,
                    Destination::address(TransportProtocol::Udp, destination),
                )
                .await
            {
                tracing::warn!(%error, "BYE could not be sent");
            }
        }
        let parties = self
            .dialogs
            .remove(dialog.call_id.as_bytes())
            .unwrap_or_default();
        let record = acc::media_timeout_record(
            &dialog,
            parties,
            self.config.local_addr.ip(),
            unix_time_ms(),
        );
        self.services.accounting.record(record);
    }
}

/// Which party offers: `offer`/`answer`, and whether the offerer is the To party (a late
/// offer in a reply and its answer in the ACK) so the tags are swapped (ng-protocol.md §3).
#[derive(Debug, Clone, Copy)]
pub(super) struct Roles {
    pub(super) is_answer: bool,
    pub(super) offerer_is_to: bool,
}

/// Puts `message`'s SDP through the relay and returns the SDP to pass on.
pub(super) async fn exchange_sdp(
    media: &MediaRelayClient,
    message: &Message,
    roles: Roles,
    via_branch: Option<&[u8]>,
    received_from: Option<IpAddr>,
    label: Option<&str>,
) -> Result<Bytes, NgClientError> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let call_id = call_id_text(message);
    let from_tag = message.from().ok().and_then(|from| from.tag().map(text));
    let to_tag = message.to().ok().and_then(|to| to.tag().map(text));
    let (offerer, other) = if roles.offerer_is_to {
        (to_tag, from_tag)
    } else {
        (from_tag, to_tag)
    };
    let Some(offerer) = offerer else {
        return Err(NgClientError::Refused("the SDP sender has no tag".into()));
    };
    let via_branch = via_branch.map(text);
    let body = message.body();
    let sdp = media
        .offer_answer(
            &SdpExchange {
                call_id: &call_id,
                from_tag: &offerer,
                to_tag: other.as_deref(),
                via_branch: via_branch.as_deref(),
                received_from,
                label,
                sdp: &body,
            },
            roles.is_answer,
        )
        .await?;
    Ok(Bytes::from(sdp))
}

/// The answer to a request whose SDP the relay did not take: 488 when it refused the SDP
/// (RFC 3261 §21.4.26), else 503.
pub(super) fn media_failure_response(request: &Message, error: &NgClientError) -> Message {
    match error {
        NgClientError::Refused(reason) if reason.contains("SDP") => local_response(
            request,
            488,
            "Not Acceptable Here - Media Relay Refused SDP",
        )
        .build(),
        NgClientError::Refused(_) | NgClientError::BadReply(_) => {
            local_response(request, 503, "Media Relay Refused Call").build()
        }
        NgClientError::Timeout { .. } | NgClientError::Down { .. } | NgClientError::Io(_) => {
            local_response(request, 503, "Media Relay Unavailable").build()
        }
    }
}

/// Whether a message carries an SDP body (a body with `application/sdp` or no Content-Type).
pub(super) fn has_sdp(message: &Message) -> bool {
    if message.body().is_empty() {
        return false;
    }
    match message.content_type() {
        Ok(Some(media_type)) => media_type.is(b"application", b"sdp"),
        Ok(None) => true,
        Err(_) => false,
    }
}

pub(super) fn call_id_text(message: &Message) -> String {
    message
        .call_id()
        .map(|call_id| String::from_utf8_lossy(call_id).into_owned())
        .unwrap_or_default()
}
