//! Accounting rows of proxied requests: every initial INVITE's final response, BYE, and the
//! stop of a call the relay ended. The rows are built by pure functions over the request, the
//! response and the parties; [`Router::account_final`] keeps the answered calls' parties for
//! their BYE and hands rows to the writer.

use super::*;
use store::AccRepository;

/// Whether a final `status` to `method` is accounted: every initial INVITE (not a challenge:
/// the authenticated retry is the attempt), and a BYE that succeeded.
pub(super) fn is_accounted(method: &Method, initial: bool, status: u16) -> bool {
    if matches!(status, 401 | 407) {
        return false;
    }
    match method {
        // Re-INVITEs change a call, they do not start one.
        Method::Invite => initial,
        Method::Bye => (200..300).contains(&status),
        _ => false,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The user and host of a URI as text.
fn user_and_host(uri: &Uri<'_>) -> (String, String) {
    (
        uri.user.map(text).unwrap_or_default(),
        text(uri.host.as_bytes()),
    )
}

/// The row for the final `response` to `request` (received from `source`).
pub(super) fn final_record(
    request: &Message,
    method: &Method,
    response: &Message,
    parties: &CallParties,
    source: SocketAddr,
    time_ms: i64,
) -> NewAccRecord {
    let (destination_user, destination_domain) = request
        .request_uri()
        .and_then(Result::ok)
        .map(|uri| user_and_host(&uri))
        .unwrap_or_default();
    let (source_user, source_domain) = request
        .from()
        .map(|from| user_and_host(&from.uri))
        .unwrap_or_default();
    NewAccRecord {
        method: method.to_string(),
        from_tag: request
            .from()
            .ok()
            .and_then(|from| from.tag().map(text))
            .unwrap_or_default(),
        to_tag: response
            .to()
            .ok()
            .and_then(|to| to.tag().map(text))
            .unwrap_or_default(),
        call_id: request.call_id().map(text).unwrap_or_default(),
        sip_code: response.status().unwrap_or(500),
        sip_reason: response.reason().map(text).unwrap_or_default(),
        source_user_id: parties.caller_uuid.clone(),
        destination_user_id: parties.callee_uuid.clone(),
        source_ip: source.ip().to_string(),
        destination_user,
        destination_domain,
        time_ms,
        source_cli: source_user.clone(),
        source_user,
        source_domain,
        call_type: "call".to_owned(),
    }
}

/// Most Call-IDs of stray answers remembered; past it the set starts over.
const MAX_STRAY_ANSWERS: usize = 10_000;

impl Router {
    /// The INVITE row of a 2xx that matched no transaction, when the database has none for its
    /// call: after a restart, the callee's retransmitted 2xx is the first this node sees of a
    /// call whose row the previous process never committed (it was killed while the 2xx was
    /// held for it), and the caller must not see that answer without a row. A call whose row
    /// exists (a retransmission after the transaction ended, or the previous process committed
    /// it) gets none, and each Call-ID is looked up once, so nothing is doubled.
    pub(super) async fn account_stray_answer(
        &mut self,
        response: &Message,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        if response.cseq().ok()?.method != Method::Invite {
            return None;
        }
        let call_id = response.call_id().ok().map(text)?;
        if self.stray_answers.len() >= MAX_STRAY_ANSWERS {
            self.stray_answers.clear();
        }
        if !self.stray_answers.insert(call_id.clone()) {
            return None;
        }
        match self
            .services
            .store
            .list_acc_records_by_call_id(&call_id)
            .await
        {
            Ok(rows)
                if rows
                    .iter()
                    .any(|row| row.method == "INVITE" && (200..300).contains(&row.sip_code)) =>
            {
                return None;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "acc lookup for a stray answer failed");
                return None;
            }
        }
        tracing::warn!(%call_id, "an answer with no transaction and no INVITE row: row written");
        Some(
            self.services
                .accounting
                .record_durable(stray_answer_record(response, unix_time_ms())),
        )
    }
}

/// The INVITE row of an answer known only from the response itself: the parties' ids and the
/// caller's address are unknown (the mediator treats them as foreign parties), the callee is
/// the To URI.
fn stray_answer_record(response: &Message, time_ms: i64) -> NewAccRecord {
    let unknown_source = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut record = final_record(
        response,
        &Method::Invite,
        response,
        &CallParties::default(),
        unknown_source,
        time_ms,
    );
    if let Ok(to) = response.to() {
        let (user, domain) = user_and_host(&to.uri);
        record.destination_user = user;
        record.destination_domain = domain;
    }
    record
}

/// The stop row of a call the relay ended for lack of media (a BYE the proxy sent itself).
pub(super) fn media_timeout_record(
    dialog: &Dialog,
    parties: CallParties,
    proxy_ip: IpAddr,
    time_ms: i64,
) -> NewAccRecord {
    let party = |address: &str, header: &HeaderName| {
        NameAddr::parse(address.as_bytes(), header)
            .map(|name_addr| user_and_host(&name_addr.uri))
            .unwrap_or_default()
    };
    let (source_user, source_domain) = party(&dialog.caller.address, &HeaderName::From);
    let (destination_user, destination_domain) = party(&dialog.callee.address, &HeaderName::To);
    // Fields the record gains later keep their defaults here.
    #[allow(clippy::needless_update)]
    NewAccRecord {
        source_cli: source_user.clone(),
        source_user,
        source_domain,
        destination_user,
        destination_domain,
        call_type: "call".to_owned(),
        method: Method::Bye.to_string(),
        from_tag: dialog.caller.tag.clone(),
        to_tag: dialog.callee.tag.clone(),
        call_id: dialog.call_id.clone(),
        sip_code: 200,
        sip_reason: "Media Timeout".to_owned(),
        source_user_id: parties.caller_uuid,
        destination_user_id: parties.callee_uuid,
        source_ip: proxy_ip.to_string(),
        time_ms,
        ..NewAccRecord::default()
    }
}

impl Router {
    /// Writes the `acc` record for a final response: every INVITE, and BYE with a 2xx. For a
    /// 2xx (an answered call, a finished one) it returns what resolves once the row is on disk.
    pub(super) fn account_final(
        &mut self,
        server: TransactionId,
        response: &Message,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let context = self.servers.get(&server)?;
        let status = response.status().unwrap_or(500);
        let initial = request_is_out_of_dialog(&context.request);
        if !is_accounted(&context.method, initial, status) {
            return None;
        }
        let call_id = context
            .request
            .call_id()
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        if context.method == Method::Invite && (200..300).contains(&status) {
            if self.dialogs.len() >= MAX_REMEMBERED_DIALOGS {
                // Calls whose BYE went elsewhere would pile up: drop half (in no particular
                // order; their BYE is then accounted without the parties' ids).
                let mut kept = 0;
                self.dialogs.retain(|_, _| {
                    kept += 1;
                    kept <= MAX_REMEMBERED_DIALOGS / 2
                });
            }
            self.dialogs.insert(call_id, context.parties.clone());
        } else if context.method == Method::Bye {
            self.dialogs.remove(&call_id);
        }
        let record = final_record(
            &context.request,
            &context.method,
            response,
            &context.parties,
            context.source,
            unix_time_ms(),
        );
        if (200..300).contains(&status) {
            Some(self.services.accounting.record_durable(record))
        } else {
            self.services.accounting.record(record);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
    }

    #[test]
    fn what_is_accounted() {
        assert!(is_accounted(&Method::Invite, true, 200));
        assert!(is_accounted(&Method::Invite, true, 486));
        assert!(!is_accounted(&Method::Invite, true, 407), "a challenge");
        assert!(!is_accounted(&Method::Invite, false, 200), "a re-INVITE");
        assert!(is_accounted(&Method::Bye, false, 200));
        assert!(!is_accounted(&Method::Bye, false, 481));
        assert!(!is_accounted(&Method::Options, true, 200));
    }

    #[test]
    fn a_final_record_names_both_parties_and_the_answer() {
        let invite = message(
            "INVITE sip:bob@example.org SIP/2.0\n\
             Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n\
             From: <sip:alice@example.org>;tag=a1\nTo: <sip:bob@example.org>\n\
             Call-ID: call-1\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        let busy = message(
            "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n\
             From: <sip:alice@example.org>;tag=a1\nTo: <sip:bob@example.org>;tag=b1\n\
             Call-ID: call-1\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        let parties = CallParties {
            caller_uuid: Some("uuid-a".into()),
            callee_uuid: Some("uuid-b".into()),
        };
        let record = final_record(
            &invite,
            &Method::Invite,
            &busy,
            &parties,
            "203.0.113.5:5060".parse().unwrap(),
            1_700_000_000_000,
        );
        assert_eq!(record.method, "INVITE");
        assert_eq!(
            (record.sip_code, record.sip_reason.as_str()),
            (486, "Busy Here")
        );
        assert_eq!(
            (record.from_tag.as_str(), record.to_tag.as_str()),
            ("a1", "b1")
        );
        assert_eq!(record.call_id, "call-1");
        assert_eq!(
            (record.source_user.as_str(), record.source_domain.as_str()),
            ("alice", "example.org")
        );
        assert_eq!(record.source_cli, "alice");
        assert_eq!(
            (
                record.destination_user.as_str(),
                record.destination_domain.as_str()
            ),
            ("bob", "example.org")
        );
        assert_eq!(record.source_ip, "203.0.113.5");
        assert_eq!(record.source_user_id.as_deref(), Some("uuid-a"));
        assert_eq!(record.destination_user_id.as_deref(), Some("uuid-b"));
        assert_eq!(record.time_ms, 1_700_000_000_000);
    }
}
