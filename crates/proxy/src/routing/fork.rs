//! Forking (RFC 3261 §16.6) and the response context (§16.7): branches as sip-core client
//! transactions, Timer C, CANCEL fan-out, the best final response, and the end of a request.

use super::*;

impl Router {
    /// Executes `plan` for server transaction `transaction`: its first step now, the next
    /// ones as earlier steps fail (see [`Router::finish_if_all_answered`]).
    pub(super) async fn fork(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        plan: plan::CallPlan,
        parties: CallParties,
        offered_sdp: Option<Bytes>,
        consumed_realm: &str,
    ) {
        let Some(context) = self.servers.get_mut(&transaction) else {
            return;
        };
        context.decided = true;
        context.parties = parties;
        context.media_engaged = offered_sdp.is_some();
        if context.cancelled || context.final_sent {
            // Answered meanwhile (CANCEL): the relay's call for it has no use.
            if context.media_engaged {
                let call_id = call_id_text(&context.request);
                self.spawn_media_delete(&call_id);
            }
            return;
        }
        let mut request = context.request.clone();
        consume_credentials(&mut request, consumed_realm);
        if let Some(sdp) = offered_sdp {
            request.set_body(sdp);
        }
        context.outgoing = Some(request);
        context.next_steps = plan.steps.into();
        context.fallbacks = plan.fallbacks;
        self.start_next_step(endpoint, transaction).await;
    }

    /// Rings the next step of the plan: a branch per reachable target. A step with no
    /// reachable target is skipped; with none left the attempts end ([`Router::end_attempts`]).
    async fn start_next_step(&mut self, endpoint: &SipEndpoint, transaction: TransactionId) {
        loop {
            let Some(context) = self.servers.get_mut(&transaction) else {
                return;
            };
            let (Some(step), Some(request)) =
                (context.next_steps.pop_front(), context.outgoing.clone())
            else {
                self.end_attempts(endpoint, transaction).await;
                return;
            };
            let max_forwards = context
                .request
                .max_forwards()
                .ok()
                .flatten()
                .unwrap_or(DEFAULT_MAX_FORWARDS);
            let is_invite = context.method == Method::Invite;
            let loop_hash = loop_hash(&request);
            let mut branches = Vec::new();
            for target in &step.targets {
                let Some((outgoing, destination)) =
                    self.branch_request(&request, target, max_forwards, loop_hash)
                else {
                    tracing::warn!(contact = %target.contact, "contact not reachable by IP: skipped");
                    continue;
                };
                match endpoint
                    .send_request(
                        outgoing,
                        Destination::address(TransportProtocol::Udp, destination),
                    )
                    .await
                {
                    Ok(client) => branches.push(client),
                    Err(error) => tracing::warn!(%error, "branch could not be started"),
                }
            }
            if branches.is_empty() {
                continue;
            }
            let timer_c = is_invite.then(|| Instant::now() + self.config.timer_c);
            let Some(context) = self.servers.get_mut(&transaction) else {
                return;
            };
            for client in branches {
                self.clients.insert(client, transaction);
                if let Some(at) = timer_c {
                    self.timer_c.push(Reverse((at, client)));
                }
                context.branches.push(Branch {
                    client,
                    final_status: None,
                    timer_c,
                    rang_out: false,
                });
            }
            return;
        }
    }

    /// Builds the request for one branch (RFC 3261 §16.6) and where it goes.
    pub(super) fn branch_request(
        &self,
        request: &Message,
        target: &ForkTarget,
        max_forwards: u32,
        loop_hash: u64,
    ) -> Option<(Message, SocketAddr)> {
        let destination = match (target.path.first(), &target.received) {
            (Some(first), _) => uri_address(strip_angle_brackets(first))?,
            (None, Some(received)) => uri_address(received)?,
            (None, None) => uri_address(&target.contact)?,
        };
        let mut outgoing = request.clone();
        remove_internal_headers(&mut outgoing);
        outgoing.set_request_uri(Bytes::from(target.contact.clone()));
        outgoing.replace_header(
            HeaderName::MaxForwards,
            Bytes::from((max_forwards - 1).to_string()),
        );
        if outgoing.method().is_some_and(is_dialog_forming) {
            outgoing.add_header_before(HeaderName::RecordRoute, self.own_record_route());
        }
        // §16.6 step 7 with RFC 3327 §5: the Path is the route set to the contact.
        outgoing.remove_header(&HeaderName::Route);
        for path in target.path.iter().rev() {
            outgoing.add_header_before(HeaderName::Route, Bytes::from(path.clone()));
        }
        outgoing.push_via(self.own_via(loop_hash));
        Some((outgoing, destination))
    }

    pub(super) async fn handle_branch_response(
        &mut self,
        endpoint: &SipEndpoint,
        server: TransactionId,
        client: TransactionId,
        mut response: Message,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        // §16.7 step 3: our Via goes.
        response.pop_via();
        if status == 100 {
            return;
        }
        let request_had_sdp = self
            .servers
            .get(&server)
            .is_none_or(|context| has_sdp(&context.request));
        if self
            .media_for_response(&mut response, request_had_sdp)
            .await
            && let Some(context) = self.servers.get_mut(&server)
        {
            context.media_engaged = true;
        }
        let timer_c = self.config.timer_c;
        let Some(context) = self.servers.get_mut(&server) else {
            if (200..300).contains(&status) {
                forward_response_statelessly(endpoint, response).await;
            }
            return;
        };
        let Some(branch) = context.branches.iter_mut().find(|b| b.client == client) else {
            return;
        };
        if status < 200 {
            if let Some(deadline) = branch.timer_c.as_mut() {
                // A provisional response restarts Timer C (§16.7 step 2).
                *deadline = Instant::now() + timer_c;
                self.timer_c.push(Reverse((*deadline, client)));
            }
            if !context.final_sent {
                let _ = endpoint.send_response(server, response).await;
            }
            return;
        }
        let first_final = branch.final_status.is_none();
        branch.final_status = Some(status);
        branch.timer_c = None;
        if (200..300).contains(&status) {
            // §16.7 step 5: every 2xx goes upstream at once; the others are cancelled (§16.7
            // step 10).
            let first_2xx = !context.final_sent;
            if first_2xx {
                context.final_sent = true;
                cancel_other_branches(endpoint, context, client).await;
                let committed = self.account_final(server, &response);
                self.remember_media_dialog(server, &response);
                if let Some(committed) = committed {
                    // An answered call (or its BYE): its row goes to disk before the 2xx
                    // goes upstream, so a crash right after loses no CDR.
                    self.hold_until_committed(server, response, committed);
                    return;
                }
            } else if context.held_2xx {
                // A retransmission while the first 2xx waits for its commit: that one goes.
                return;
            }
            send_upstream(endpoint, server, response).await;
            return;
        }
        if !first_final || context.final_sent {
            return;
        }
        if branch.rang_out && status == 487 {
            // The CANCEL was Timer C's, not the caller's: the branch counts as timed out
            // (§16.8), so the caller hears 408 and the plan sees "no answer".
            response = local_response(&context.request, 408, "Request Timeout").build();
        }
        let status = response.status().unwrap_or(status);
        if status >= 600 {
            // §16.7 step 5 lets a 6xx end the search: cancel the rest.
            cancel_other_branches(endpoint, context, client).await;
        }
        let current = context
            .best
            .as_ref()
            .map(|best| best.status().unwrap_or(500));
        if replaces_best(status, current) {
            context.best = Some(response);
        }
        self.finish_if_all_answered(endpoint, server).await;
    }

    /// A branch that ended without a response: it counts as if `status` had arrived
    /// (RFC 3261 §16.7 step 6: 408 for a timeout, 503 for a transport error).
    pub(super) async fn handle_branch_failure(
        &mut self,
        endpoint: &SipEndpoint,
        server: TransactionId,
        client: TransactionId,
        status: u16,
        reason: &str,
    ) {
        let Some(context) = self.servers.get_mut(&server) else {
            return;
        };
        let Some(branch) = context.branches.iter_mut().find(|b| b.client == client) else {
            return;
        };
        if branch.final_status.is_some() {
            return;
        }
        branch.final_status = Some(status);
        branch.timer_c = None;
        if context.best.is_none() {
            context.best = Some(local_response(&context.request, status, reason).build());
        }
        self.finish_if_all_answered(endpoint, server).await;
    }

    /// Sends the best response once every branch has a final one (§16.7 step 6).
    pub(super) async fn finish_if_all_answered(
        &mut self,
        endpoint: &SipEndpoint,
        server: TransactionId,
    ) {
        let Some(context) = self.servers.get_mut(&server) else {
            return;
        };
        if context.final_sent || context.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        // The next step of the plan rings unless the caller gave up or a 6xx ended the search
        // (§16.7 step 5).
        let ended_search = context
            .best
            .as_ref()
            .is_some_and(|best| best.status().is_some_and(|status| status >= 600));
        if !context.cancelled && !ended_search && !context.next_steps.is_empty() {
            self.start_next_step(endpoint, server).await;
            return;
        }
        self.end_attempts(endpoint, server).await;
    }

    /// No step of the plan is left and nobody answered: the way the attempts ended is
    /// classified and the plan's fallback for it decides what the caller gets.
    async fn end_attempts(&mut self, endpoint: &SipEndpoint, server: TransactionId) {
        let Some(context) = self.servers.get_mut(&server) else {
            return;
        };
        let best_status = context.best.as_ref().and_then(Message::status);
        let outcome = plan::classify(plan::Attempts {
            best: best_status,
            rang_out: context.rang_out,
        });
        let response = match (
            context.fallbacks.after(outcome, best_status),
            context.best.take(),
        ) {
            (plan::Ending::RelayBest, Some(best)) if best.status() == Some(503) => {
                // §16.7 step 6: a 503 from downstream must not make the caller stop using us.
                local_response(&context.request, 500, "Server Internal Error").build()
            }
            (plan::Ending::RelayBest, Some(best)) => best,
            (plan::Ending::Respond(refusal), _) => {
                local_response(&context.request, refusal.status, refusal.reason).build()
            }
            (plan::Ending::RelayBest, None) => {
                local_response(&context.request, 480, "Temporarily Unavailable").build()
            }
        };
        tracing::debug!(?outcome, status = response.status(), "call attempts ended");
        self.respond(endpoint, server, response).await;
    }

    /// Sends a final response in server transaction `transaction` and accounts for it.
    pub(super) async fn respond(
        &mut self,
        endpoint: &SipEndpoint,
        transaction: TransactionId,
        response: Message,
    ) {
        if let Some(context) = self.servers.get_mut(&transaction) {
            if context.final_sent {
                return;
            }
            context.final_sent = true;
            context.decided = true;
            let failed_call = context.method == Method::Invite
                && request_is_out_of_dialog(&context.request)
                && response.status().is_some_and(|status| status >= 300);
            if failed_call && context.media_engaged {
                let call_id = call_id_text(&context.request);
                self.spawn_media_delete(&call_id);
            }
        }
        // A local answer is no answered call: its row need not hold the response.
        drop(self.account_final(transaction, &response));
        send_final(endpoint, transaction, response).await;
        self.forget_if_done(transaction);
    }

    /// Holds a 2xx of `server` until its accounting row is committed, then hands it back as
    /// [`Work::Committed`]. A failed write is logged by the writer; the call goes on.
    fn hold_until_committed(
        &mut self,
        server: TransactionId,
        response: Message,
        committed: tokio::sync::oneshot::Receiver<bool>,
    ) {
        if let Some(context) = self.servers.get_mut(&server) {
            context.held_2xx = true;
        }
        let work = self.work.clone();
        tokio::spawn(async move {
            if !committed.await.unwrap_or(false) {
                tracing::error!("accounting row not on disk: answer forwarded anyway");
            }
            let _ = work.send(Work::Committed {
                transaction: server,
                response: Box::new(response),
            });
        });
    }

    /// Sends a 2xx whose row is committed.
    pub(super) async fn release_committed(
        &mut self,
        endpoint: &SipEndpoint,
        server: TransactionId,
        response: Message,
    ) {
        if let Some(context) = self.servers.get_mut(&server) {
            context.held_2xx = false;
        }
        send_upstream(endpoint, server, response).await;
        self.forget_if_done(server);
    }

    /// Drops a context once its final response is out and no branch lives any more.
    pub(super) fn forget_if_done(&mut self, server: TransactionId) {
        let done = self.servers.get(&server).is_some_and(|context| {
            context.final_sent
                && context.decided
                && context
                    .branches
                    .iter()
                    .all(|branch| !self.clients.contains_key(&branch.client))
        });
        if done {
            self.servers.remove(&server);
        }
    }
}

/// Sends a 2xx upstream in its server transaction, or statelessly by its Via once that
/// transaction is gone (RFC 6026).
async fn send_upstream(endpoint: &SipEndpoint, server: TransactionId, response: Message) {
    if endpoint
        .send_response(server, response.clone())
        .await
        .is_err()
    {
        forward_response_statelessly(endpoint, response).await;
    }
}

/// CANCELs every branch of `context` still waiting for a final response, but `client`
/// (§16.7 step 10).
async fn cancel_other_branches(
    endpoint: &SipEndpoint,
    context: &ServerContext,
    client: TransactionId,
) {
    for branch in &context.branches {
        if branch.client != client && branch.final_status.is_none() {
            let _ = endpoint.send_cancel(branch.client).await;
        }
    }
}
