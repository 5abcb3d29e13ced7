//! The sans-IO heart of mediation: one call's acc rows in, a decision out. No clock, no
//! database: the caller passes the current time and the subscribers the rows name.
//!
//! Rules (after Sipwise's mediator):
//! - every INVITE row gives one CDR; its `time_ms` is the answer time for a 2xx, else the time
//!   of the final response; duration = first BYE at or after the answer − the answer, in
//!   milliseconds; unanswered calls have duration 0;
//! - status from the INVITE's final code: 2xx `ok`, 480 `noanswer`, 487 `cancel`, 486 `busy`,
//!   408 `timeout`, 404 `offline`, anything else `other`;
//! - an answered INVITE without a BYE waits until it is older than the maximum call age, then
//!   becomes a CDR with status `failed` and duration 0;
//! - a group that breaks these rules (unknown method, impossible code or time, a BYE with no
//!   answered INVITE before it) goes to the trash with the reason.

use std::collections::HashMap;

use store::{AccRecord, CallStatus, CallType, CdrLeg, MediationOutcome, NewCdr, SubscriberRef};

/// What to do with one group of acc rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An answered call is still up (no BYE yet, younger than the maximum age): leave it.
    Wait,
    /// Write this outcome.
    Mediate(MediationOutcome),
}

/// The CDR status for an INVITE's final code.
pub fn status_for_code(code: u16) -> CallStatus {
    match code {
        200..=299 => CallStatus::Ok,
        480 => CallStatus::NoAnswer,
        487 => CallStatus::Cancel,
        486 => CallStatus::Busy,
        408 => CallStatus::Timeout,
        404 => CallStatus::Offline,
        _ => CallStatus::Other,
    }
}

/// Decides one group: `records` are every acc row of one Call-ID (any order), `subscribers`
/// the subscribers their UUIDs name (missing ones are treated as foreign parties), `now_ms`
/// the current time and `max_call_age_ms` how long an answered call may wait for its BYE.
pub fn decide(
    records: &[AccRecord],
    subscribers: &HashMap<String, SubscriberRef>,
    now_ms: i64,
    max_call_age_ms: i64,
) -> Decision {
    let mut records: Vec<&AccRecord> = records.iter().collect();
    records.sort_by_key(|record| (record.time_ms, record.id));
    let acc_ids: Vec<i64> = records.iter().map(|record| record.id).collect();
    let trash = |reason: String| {
        Decision::Mediate(MediationOutcome::Trash {
            acc_ids: acc_ids.clone(),
            reason,
        })
    };
    if records.is_empty() {
        return trash("empty group".to_owned());
    }
    let mut invites = Vec::new();
    let mut byes = Vec::new();
    for record in &records {
        match check_record(record) {
            Ok(Row::Invite(code, call_type)) => invites.push((*record, code, call_type)),
            Ok(Row::Bye) => byes.push(*record),
            Err(reason) => return trash(format!("acc row {}: {reason}", record.id)),
        }
    }
    if invites.is_empty() {
        return trash("BYE without an INVITE".to_owned());
    }
    // Every BYE must close some answered INVITE that came before it.
    for bye in &byes {
        let closes = invites
            .iter()
            .any(|(invite, code, _)| (200..300).contains(code) && invite.time_ms <= bye.time_ms);
        if !closes {
            return trash(format!(
                "acc row {}: BYE without an answered INVITE before it",
                bye.id
            ));
        }
    }
    let mut cdrs = Vec::with_capacity(invites.len());
    for (invite, code, call_type) in &invites {
        let answered = (200..300).contains(code);
        let (status, duration_ms) = if answered {
            match byes.iter().find(|bye| bye.time_ms >= invite.time_ms) {
                Some(bye) => (CallStatus::Ok, bye.time_ms - invite.time_ms),
                None if now_ms.saturating_sub(invite.time_ms) < max_call_age_ms => {
                    return Decision::Wait;
                }
                None => (CallStatus::Failed, 0),
            }
        } else {
            (status_for_code(*code), 0)
        };
        cdrs.push(cdr_for(
            invite,
            *code,
            *call_type,
            status,
            duration_ms,
            subscribers,
        ));
    }
    Decision::Mediate(MediationOutcome::Cdrs { acc_ids, cdrs })
}

enum Row {
    Invite(u16, CallType),
    Bye,
}

/// Checks one row's fields; the error is the trash reason.
fn check_record(record: &AccRecord) -> Result<Row, String> {
    if record.call_id.is_empty() {
        return Err("empty Call-ID".to_owned());
    }
    if record.time_ms <= 0 {
        return Err(format!("time {} is not after 1970", record.time_ms));
    }
    let code = u16::try_from(record.sip_code)
        .ok()
        .filter(|code| (100..=699).contains(code))
        .ok_or_else(|| format!("SIP code {} is not a status code", record.sip_code))?;
    match record.method.as_str() {
        "INVITE" => {
            if code < 200 {
                return Err(format!("INVITE with provisional code {code}"));
            }
            let call_type = record
                .call_type
                .parse::<CallType>()
                .map_err(|_| format!("unknown call type '{}'", record.call_type))?;
            Ok(Row::Invite(code, call_type))
        }
        "BYE" if (200..300).contains(&code) => Ok(Row::Bye),
        "BYE" => Err(format!("BYE with non-2xx code {code}")),
        other => Err(format!("method '{other}' is neither INVITE nor BYE")),
    }
}

fn leg(
    user_id: Option<&String>,
    user: &str,
    domain: &str,
    subscribers: &HashMap<String, SubscriberRef>,
) -> (CdrLeg, Option<String>) {
    match user_id.and_then(|uuid| subscribers.get(uuid)) {
        Some(subscriber) => (
            CdrLeg {
                user_id: Some(subscriber.uuid.clone()),
                subscriber_id: Some(subscriber.id),
                customer_id: Some(subscriber.customer_id),
                user: subscriber.username.clone(),
                domain: subscriber.domain.clone(),
            },
            subscriber.primary_number.clone(),
        ),
        None => (
            CdrLeg {
                user_id: user_id.cloned(),
                subscriber_id: None,
                customer_id: None,
                user: user.to_owned(),
                domain: domain.to_owned(),
            },
            None,
        ),
    }
}

fn cdr_for(
    invite: &AccRecord,
    code: u16,
    call_type: CallType,
    status: CallStatus,
    duration_ms: i64,
    subscribers: &HashMap<String, SubscriberRef>,
) -> NewCdr {
    let (source, source_number) = leg(
        invite.source_user_id.as_ref(),
        &invite.source_user,
        &invite.source_domain,
        subscribers,
    );
    let (destination, _) = leg(
        invite.destination_user_id.as_ref(),
        &invite.destination_user,
        &invite.destination_domain,
        subscribers,
    );
    // The CLI of one of our subscribers is its primary number (C5's default `cli`); for others
    // what the caller presented.
    let source_cli = source_number
        .or_else(|| Some(invite.source_cli.clone()).filter(|cli| !cli.is_empty()))
        .unwrap_or_else(|| invite.source_user.clone());
    NewCdr {
        acc_id: invite.id,
        call_id: invite.call_id.clone(),
        call_type,
        call_status: status,
        call_code: code,
        init_time_ms: invite.time_ms,
        start_time_ms: invite.time_ms,
        duration_ms,
        source,
        destination,
        source_cli,
        source_ip: invite.source_ip.clone(),
        destination_user_dialed: invite.destination_user.clone(),
        destination_user_in: invite.destination_user.clone(),
        destination_domain_in: invite.destination_domain.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_764_000_000_000;
    const HOUR: i64 = 3_600_000;
    const ALICE: &str = "6f1c0c0e-0000-4000-8000-000000000001";

    fn row(id: i64, method: &str, code: i64, time_ms: i64) -> AccRecord {
        AccRecord {
            id,
            method: method.to_owned(),
            from_tag: "ft".to_owned(),
            to_tag: "tt".to_owned(),
            call_id: "call-1".to_owned(),
            sip_code: code,
            sip_reason: String::new(),
            source_user_id: Some(ALICE.to_owned()),
            destination_user_id: None,
            source_ip: "127.0.0.7".to_owned(),
            destination_user: "0043999".to_owned(),
            destination_domain: "voxide.test".to_owned(),
            time_ms,
            source_user: "alice-from".to_owned(),
            source_domain: "from.example".to_owned(),
            source_cli: "alice-from".to_owned(),
            call_type: "call".to_owned(),
        }
    }

    fn subscribers() -> HashMap<String, SubscriberRef> {
        HashMap::from([(
            ALICE.to_owned(),
            SubscriberRef {
                uuid: ALICE.to_owned(),
                id: 7,
                customer_id: 3,
                username: "alice".to_owned(),
                domain: "voxide.test".to_owned(),
                primary_number: Some("431100000".to_owned()),
            },
        )])
    }

    fn cdrs(decision: Decision) -> (Vec<i64>, Vec<NewCdr>) {
        match decision {
            Decision::Mediate(MediationOutcome::Cdrs { acc_ids, cdrs }) => (acc_ids, cdrs),
            other => panic!("expected CDRs, got {other:?}"),
        }
    }

    fn trash_reason(decision: Decision) -> String {
        match decision {
            Decision::Mediate(MediationOutcome::Trash { reason, .. }) => reason,
            other => panic!("expected trash, got {other:?}"),
        }
    }

    #[test]
    fn the_status_table_follows_the_c5_mapping() {
        let table = [
            (200, CallStatus::Ok),
            (202, CallStatus::Ok),
            (480, CallStatus::NoAnswer),
            (487, CallStatus::Cancel),
            (486, CallStatus::Busy),
            (408, CallStatus::Timeout),
            (404, CallStatus::Offline),
            (403, CallStatus::Other),
            (500, CallStatus::Other),
            (603, CallStatus::Other),
        ];
        for (code, status) in table {
            assert_eq!(status_for_code(code), status, "code {code}");
        }
    }

    #[test]
    fn an_answered_call_lasts_from_answer_to_bye_in_milliseconds() {
        let rows = [row(1, "INVITE", 200, T0), row(2, "BYE", 200, T0 + 5_432)];
        let (ids, cdrs) = cdrs(decide(&rows, &subscribers(), T0 + 10_000, HOUR));
        assert_eq!(ids, [1, 2]);
        assert_eq!(cdrs.len(), 1);
        let cdr = &cdrs[0];
        assert_eq!(
            (cdr.call_status, cdr.call_code, cdr.duration_ms),
            (CallStatus::Ok, 200, 5_432)
        );
        assert_eq!((cdr.start_time_ms, cdr.acc_id), (T0, 1));
        assert_eq!(cdr.call_type, CallType::Call);
        // The known caller gets its ids, username, domain and number as CLI.
        assert_eq!(cdr.source.subscriber_id, Some(7));
        assert_eq!(cdr.source.customer_id, Some(3));
        assert_eq!(cdr.source.user, "alice");
        assert_eq!(cdr.source_cli, "431100000");
        assert_eq!(cdr.source_ip, "127.0.0.7");
        // The unknown callee keeps what the caller dialed.
        assert_eq!(cdr.destination.subscriber_id, None);
        assert_eq!(cdr.destination.user, "0043999");
        assert_eq!(cdr.destination_user_dialed, "0043999");
        assert_eq!(cdr.destination_domain_in, "voxide.test");
    }

    #[test]
    fn an_unknown_caller_keeps_the_from_identity() {
        let mut invite = row(1, "INVITE", 486, T0);
        invite.source_user_id = None;
        let (_, cdrs) = cdrs(decide(&[invite], &subscribers(), T0, HOUR));
        assert_eq!(cdrs[0].source.user, "alice-from");
        assert_eq!(cdrs[0].source.domain, "from.example");
        assert_eq!(cdrs[0].source_cli, "alice-from");
        assert_eq!(cdrs[0].source.customer_id, None);
    }

    #[test]
    fn failed_calls_have_zero_duration_and_their_status() {
        for (code, status) in [
            (486, CallStatus::Busy),
            (487, CallStatus::Cancel),
            (480, CallStatus::NoAnswer),
            (404, CallStatus::Offline),
        ] {
            let (_, cdrs) = cdrs(decide(
                &[row(9, "INVITE", code, T0)],
                &subscribers(),
                T0,
                HOUR,
            ));
            assert_eq!((cdrs[0].call_status, cdrs[0].duration_ms), (status, 0));
            assert_eq!(cdrs[0].call_code, code as u16);
        }
    }

    #[test]
    fn an_answered_call_without_bye_waits_then_fails_after_the_maximum_age() {
        let rows = [row(1, "INVITE", 200, T0)];
        assert_eq!(
            decide(&rows, &subscribers(), T0 + HOUR - 1, HOUR),
            Decision::Wait
        );
        let (ids, cdrs) = cdrs(decide(&rows, &subscribers(), T0 + HOUR, HOUR));
        assert_eq!(ids, [1]);
        assert_eq!(
            (cdrs[0].call_status, cdrs[0].duration_ms),
            (CallStatus::Failed, 0)
        );
        assert_eq!(cdrs[0].call_code, 200);
    }

    #[test]
    fn every_invite_row_gives_one_cdr() {
        let mut forwarded = row(2, "INVITE", 200, T0 + 100);
        forwarded.call_type = "cfu".to_owned();
        let rows = [
            row(3, "BYE", 200, T0 + 2_100),
            forwarded,
            row(1, "INVITE", 486, T0),
        ];
        let (ids, cdrs) = cdrs(decide(&rows, &subscribers(), T0 + 5_000, HOUR));
        assert_eq!(ids, [1, 2, 3], "sorted by time");
        let summary: Vec<_> = cdrs
            .iter()
            .map(|cdr| (cdr.acc_id, cdr.call_type, cdr.call_status, cdr.duration_ms))
            .collect();
        assert_eq!(
            summary,
            [
                (1, CallType::Call, CallStatus::Busy, 0),
                (2, CallType::Cfu, CallStatus::Ok, 2_000)
            ]
        );
    }

    #[test]
    fn malformed_groups_are_trashed_with_the_reason() {
        let cases: Vec<(Vec<AccRecord>, &str)> = vec![
            (vec![row(1, "OPTIONS", 200, T0)], "neither INVITE nor BYE"),
            (vec![row(1, "INVITE", 999, T0)], "not a status code"),
            (vec![row(1, "INVITE", -1, T0)], "not a status code"),
            (vec![row(1, "INVITE", 180, T0)], "provisional"),
            (vec![row(1, "INVITE", 200, 0)], "not after 1970"),
            (vec![row(1, "BYE", 200, T0)], "BYE without an INVITE"),
            (
                vec![row(1, "INVITE", 486, T0), row(2, "BYE", 200, T0 + 1)],
                "without an answered INVITE",
            ),
            (
                vec![row(1, "INVITE", 200, T0), row(2, "BYE", 200, T0 - 5)],
                "without an answered INVITE",
            ),
            (
                vec![row(1, "INVITE", 200, T0), row(2, "BYE", 481, T0 + 5)],
                "non-2xx",
            ),
        ];
        for (rows, expected) in cases {
            let reason = trash_reason(decide(&rows, &subscribers(), T0 + 10, HOUR));
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
        let mut odd = row(1, "INVITE", 200, T0);
        odd.call_type = "teleport".to_owned();
        let reason = trash_reason(decide(&[odd], &subscribers(), T0, HOUR));
        assert_eq!(reason, "acc row 1: unknown call type 'teleport'");
    }

    fn any_row() -> impl Strategy<Value = AccRecord> {
        (
            1i64..1000,
            prop::sample::select(vec!["INVITE", "BYE", "ACK"]),
            prop::sample::select(vec![0i64, 100, 180, 200, 404, 408, 480, 486, 487, 500, 700]),
            -10i64..100_000,
            prop::sample::select(vec!["call", "cfu", "bogus"]),
        )
            .prop_map(|(id, method, code, offset, call_type)| {
                let mut record = row(id, method, code, T0 + offset);
                record.call_type = call_type.to_owned();
                record
            })
    }

    proptest! {
        /// Whatever the rows, the group is either left alone or handled as a whole: every row
        /// id is consumed exactly once, CDRs exist only for INVITE rows (one each) and no
        /// duration is negative.
        #[test]
        fn every_row_is_consumed_once_and_cdrs_match_invites(
            rows in prop::collection::vec(any_row(), 1..8),
            now_offset in 0i64..(2 * HOUR),
        ) {
            let mut rows = rows;
            for (index, row) in rows.iter_mut().enumerate() {
                row.id = index as i64 + 1;
            }
            match decide(&rows, &subscribers(), T0 + now_offset, HOUR) {
                Decision::Wait => {
                    prop_assert!(rows.iter().any(|row| row.method == "INVITE" && (200..300).contains(&row.sip_code)));
                }
                Decision::Mediate(MediationOutcome::Trash { mut acc_ids, reason }) => {
                    acc_ids.sort_unstable();
                    prop_assert_eq!(acc_ids, (1..=rows.len() as i64).collect::<Vec<_>>());
                    prop_assert!(!reason.is_empty());
                }
                Decision::Mediate(MediationOutcome::Cdrs { mut acc_ids, cdrs }) => {
                    acc_ids.sort_unstable();
                    prop_assert_eq!(acc_ids, (1..=rows.len() as i64).collect::<Vec<_>>());
                    let invites = rows.iter().filter(|row| row.method == "INVITE").count();
                    prop_assert_eq!(cdrs.len(), invites);
                    for cdr in &cdrs {
                        prop_assert!(cdr.duration_ms >= 0);
                        if cdr.call_status != CallStatus::Ok {
                            prop_assert_eq!(cdr.duration_ms, 0);
                        }
                        prop_assert_eq!(cdr.call_status == CallStatus::Ok || cdr.call_status == CallStatus::Failed,
                            (200..300).contains(&cdr.call_code));
                    }
                }
            }
        }
    }
}
