//! The async shell of the call decision: it gathers what `super::plan` decides over
//! (served domains, the authenticated caller, the callee, its bindings) from the database and
//! the location service, then runs the media offer for the plan the router executes.

use super::plan::{self, Refusal};
use super::*;
use store::RewriteRuleRepository;

/// The decision for an out-of-dialog request: authenticate the caller, check the From
/// identity, find the callee and its contacts.
pub(super) async fn decide(
    services: &RouterServices,
    served_domains: &[String],
    request: &Message,
    source: SocketAddr,
    transaction: TransactionId,
) -> Work {
    let refuse = |refusal: Refusal, parties: CallParties| Work::Respond {
        transaction,
        response: Box::new(local_response(request, refusal.status, refusal.reason).build()),
        parties,
    };
    let server_error = Refusal {
        status: 500,
        reason: "Server Internal Error",
    };
    let respond = |status: u16, reason: &'static str| {
        refuse(Refusal { status, reason }, CallParties::default())
    };
    let Ok(from) = request.from() else {
        return respond(400, "Bad From");
    };
    let Ok(from_aor) = AddressOfRecord::from_uri(&from.uri) else {
        return respond(403, "Forbidden - Bad From URI");
    };
    let served = match is_served(services, served_domains, &from_aor.domain).await {
        Ok(served) => served,
        Err(()) => return refuse(server_error, CallParties::default()),
    };
    if let Err(refusal) = plan::check_caller_domain(served) {
        return refuse(refusal, CallParties::default());
    }
    let caller = match services
        .authenticator
        .authenticate(request, source, unix_now())
        .await
    {
        AuthOutcome::Authenticated(subscriber) => subscriber,
        AuthOutcome::Challenge(response) | AuthOutcome::Rejected(response) => {
            return Work::Respond {
                transaction,
                response: Box::new(response),
                parties: CallParties::default(),
            };
        }
    };
    // From here on a refusal is accounted with the caller's id (and the callee's once known).
    let mut parties = CallParties {
        caller_uuid: Some(caller.uuid.clone()),
        callee_uuid: None,
    };
    let claimed = plan::Identity {
        user: &from_aor.user,
        domain: &from_aor.domain,
    };
    let proved = plan::Identity {
        user: &caller.username,
        domain: &caller.domain,
    };
    if let Err(refusal) = plan::check_identity(claimed, proved) {
        return refuse(refusal, parties);
    }
    let Some(Ok(request_uri)) = request.request_uri() else {
        return refuse(
            Refusal {
                status: 416,
                reason: "Unsupported URI Scheme",
            },
            parties,
        );
    };
    let Ok(callee_aor) = AddressOfRecord::from_uri(&request_uri) else {
        return refuse(
            Refusal {
                status: 404,
                reason: "Not Found",
            },
            parties,
        );
    };
    let served = match is_served(services, served_domains, &callee_aor.domain).await {
        Ok(served) => served,
        Err(()) => return refuse(server_error, parties),
    };
    if let Err(refusal) = plan::check_callee_domain(served) {
        return refuse(refusal, parties);
    }
    let callee_aor = match normalise_callee(services, caller.id, callee_aor).await {
        Ok(aor) => aor,
        Err(()) => return refuse(server_error, parties),
    };
    let callee = match find_callee(&services.store, &callee_aor).await {
        Ok(callee) => callee,
        Err(()) => return refuse(server_error, parties),
    };
    let mut contacts = Vec::new();
    if let Some(callee) = &callee {
        parties.callee_uuid = Some(callee.uuid.clone());
        if callee.status == SubscriberStatus::Active.as_str() {
            let aor = AddressOfRecord::new(callee.username.clone(), &callee.domain);
            match services.location.lookup(&aor).await {
                Ok(bindings) => {
                    contacts = bindings
                        .into_iter()
                        .map(|binding| plan::Contact {
                            q: binding.q,
                            target: ForkTarget {
                                contact: binding.contact,
                                path: binding.path,
                                received: binding.received,
                            },
                        })
                        .collect();
                }
                Err(error) => {
                    tracing::error!(%error, "location lookup failed");
                    return refuse(server_error, parties);
                }
            }
        }
    }
    let plan = match plan::plan_call(callee.as_ref().map(|callee| plan::Callee {
        active: callee.status == SubscriberStatus::Active.as_str(),
        bindings: &contacts,
    })) {
        Ok(plan) => plan,
        Err(refusal) => return refuse(refusal, parties),
    };
    let mut offered_sdp = None;
    if let Some(media) = &services.media
        && request.method() == Some(&Method::Invite)
        && has_sdp(request)
    {
        let roles = Roles {
            is_answer: false,
            offerer_is_to: false,
        };
        let branch = request
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(<[u8]>::to_vec));
        match exchange_sdp(
            media,
            request,
            roles,
            branch.as_deref(),
            Some(source.ip()),
            Some("caller"),
        )
        .await
        {
            Ok(sdp) => offered_sdp = Some(sdp),
            Err(error) => {
                tracing::warn!(%error, call_id = call_id_text(request), "media relay offer failed");
                return Work::Respond {
                    transaction,
                    response: Box::new(media_failure_response(request, &error)),
                    parties,
                };
            }
        }
    }
    Work::Fork {
        offered_sdp,
        consumed_realm: caller.domain.clone(),
        transaction,
        plan,
        parties,
    }
}

/// Whether the platform serves `domain`.
pub(super) async fn is_served(
    services: &RouterServices,
    served_domains: &[String],
    domain: &str,
) -> Result<bool, ()> {
    if !served_domains.is_empty() {
        return Ok(served_domains
            .iter()
            .any(|served| served.eq_ignore_ascii_case(domain)));
    }
    match services.store.find_domain_by_name(domain).await {
        Ok(found) => Ok(found.is_some()),
        Err(error) => {
            tracing::error!(%error, "domain lookup failed");
            Err(())
        }
    }
}

/// The callee by username@domain, else by E.164 number (a leading `+` dropped).
/// The callee's user part through the caller's `callee_in` rewrite rules (C5's dialplan on
/// the way in: national or local dialling becomes E.164, so the number lookup finds the
/// subscriber). Unchanged when no rule set applies or none of its rules matches. While no level
/// sets `rewrite_rule_set`, no call pays for the lookup ([`PreferenceGate`]).
async fn normalise_callee(
    services: &RouterServices,
    caller_id: i64,
    aor: AddressOfRecord,
) -> Result<AddressOfRecord, ()> {
    use store::{RewriteDirection, RewriteField};
    if !services.rewrite_sets.any_set(&services.store).await {
        return Ok(aor);
    }
    let store = &services.store;
    let log = |error: store::StoreError| tracing::error!(%error, "callee_in rewrite failed");
    let Some(compiled) = store
        .subscriber_rewrite_rule_set(caller_id)
        .await
        .map_err(log)?
    else {
        return Ok(aor);
    };
    if compiled.is_empty() {
        return Ok(aor);
    }
    let variables = store
        .rewrite_variables(Some(caller_id), None)
        .await
        .map_err(log)?;
    let rewritten = compiled.apply(
        RewriteDirection::In,
        RewriteField::Callee,
        &aor.user,
        &variables,
    );
    if rewritten.number != aor.user {
        tracing::debug!(from = %aor.user, to = %rewritten.number, rule = rewritten.rule_id, "callee_in rewrite");
        return Ok(AddressOfRecord::new(rewritten.number, &aor.domain));
    }
    Ok(aor)
}

pub(super) async fn find_callee(
    store: &Store,
    aor: &AddressOfRecord,
) -> Result<Option<store::SipCallee>, ()> {
    let log = |error: store::StoreError| tracing::error!(%error, "callee lookup failed");
    if let Some(callee) = store
        .find_sip_callee(&aor.user, &aor.domain)
        .await
        .map_err(log)?
    {
        return Ok(Some(callee));
    }
    let digits = aor.user.strip_prefix('+').unwrap_or(&aor.user);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(None);
    }
    store.find_sip_callee_by_number(digits).await.map_err(log)
}
