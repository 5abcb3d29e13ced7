//! The call plan, pure: from plain records (who the caller proved to be, the callee as the
//! store has it, the callee's bindings) to a decision the router executes — a refusal with its
//! status and reason, or the targets to try in which order.
//!
//! Order (RFC 3261 §16.6 with q-values): contacts of the highest q ring first, all contacts of
//! one q-value in parallel; when every branch of a step has failed without a 6xx, the next
//! lower q-value rings. When no step is left, how the attempts ended is classified
//! ([`classify`]: busy, no answer, offline, failed) and the plan's [`Fallbacks`] say what that
//! outcome leads to ([`Fallbacks::after`]). Today every outcome relays the best response
//! (§16.7); call forwarding, voicemail and peering fill in the other [`Continuation`]s.
//!
//! No I/O, no clock: the router's `decide` gathers the inputs, the router's fork code executes the
//! plan.

use super::ForkTarget;

/// A refusal: the final response the caller gets instead of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

impl Refusal {
    const fn new(status: u16, reason: &'static str) -> Self {
        Self { status, reason }
    }
}

/// The subscriber a request claims to be (its From) or proved to be (digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    pub user: &'a str,
    /// Lower case.
    pub domain: &'a str,
}

/// The callee as routing needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Callee<'a> {
    /// Whether the subscriber's status is `active`.
    pub active: bool,
    /// The callee's registered contacts.
    pub bindings: &'a [Contact],
}

/// One registered contact and its q-value (thousandths, RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub target: ForkTarget,
    pub q: u16,
}

/// Targets that ring at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    pub targets: Vec<ForkTarget>,
}

/// What the router does with a call: ring `steps` one after another, then what
/// `fallbacks` say for the way the attempts ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// Never empty.
    pub steps: Vec<PlanStep>,
    pub fallbacks: Fallbacks,
}

/// How the attempts of a call ended, in the terms call features are defined in (C5's CFB,
/// CFT and CFNA triggers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The best response says busy: 486 Busy Here or 600 Busy Everywhere.
    Busy,
    /// A branch rang until the proxy's ring timer (Timer C) gave up on it.
    NoAnswer,
    /// Nobody to ring: not registered, no contact reachable, or the contacts timed out or
    /// said unavailable (408, 480) or could not be reached (503 from the transport).
    Offline,
    /// Any other final failure (a 4xx, 5xx or 6xx the callee chose).
    Failed,
}

/// The ways a call's attempts end, as [`classify`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// The status of the §16.7 best response; `None` when no branch was started.
    pub best: Option<u16>,
    /// Some branch was cancelled by the ring timer (its ending counts as a 408).
    pub rang_out: bool,
}

/// Classifies how the attempts of a call ended.
pub fn classify(attempts: Attempts) -> Outcome {
    match attempts.best {
        None => Outcome::Offline,
        Some(486 | 600) => Outcome::Busy,
        Some(408) if attempts.rang_out => Outcome::NoAnswer,
        Some(408 | 480 | 503) => Outcome::Offline,
        Some(_) => Outcome::Failed,
    }
}

/// What one [`Outcome`] leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Continuation {
    /// The caller gets the best response (RFC 3261 §16.7), or `480 Temporarily Unavailable`
    /// when no branch answered at all.
    #[default]
    Relay,
    /// The caller gets this answer, whatever the branches said.
    Refuse(Refusal),
}

/// What each outcome of a call leads to. The default relays the best response for every one;
/// subscriber features (forwarding, voicemail) and peering set others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fallbacks {
    pub busy: Continuation,
    pub no_answer: Continuation,
    pub offline: Continuation,
    pub failed: Continuation,
}

/// The end of a call that reached nobody: the status and reason the caller gets, or the best
/// response as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Send the §16.7 best response.
    RelayBest,
    /// Send this answer.
    Respond(Refusal),
}

impl Fallbacks {
    /// The continuation for `outcome`.
    pub fn continuation(&self, outcome: Outcome) -> Continuation {
        match outcome {
            Outcome::Busy => self.busy,
            Outcome::NoAnswer => self.no_answer,
            Outcome::Offline => self.offline,
            Outcome::Failed => self.failed,
        }
    }

    /// What the caller gets for `outcome` with best response status `best`.
    pub fn after(&self, outcome: Outcome, best: Option<u16>) -> Ending {
        match (self.continuation(outcome), best) {
            (Continuation::Refuse(refusal), _) => Ending::Respond(refusal),
            (Continuation::Relay, Some(_)) => Ending::RelayBest,
            (Continuation::Relay, None) => Ending::Respond(UNAVAILABLE),
        }
    }
}

/// The answer when nobody could be rung.
const UNAVAILABLE: Refusal = Refusal::new(480, "Temporarily Unavailable");

/// The From identity must be the subscriber who proved it (no call hijacking).
pub fn check_identity(from: Identity<'_>, authenticated: Identity<'_>) -> Result<(), Refusal> {
    if from == authenticated {
        Ok(())
    } else {
        Err(Refusal::new(403, "Forbidden - From Identity Mismatch"))
    }
}

/// Where the callee's domain leads: a domain the platform does not serve has no route (no
/// peerings yet).
pub fn check_callee_domain(served: bool) -> Result<(), Refusal> {
    if served {
        Ok(())
    } else {
        Err(Refusal::new(404, "Not Found - No Route"))
    }
}

/// Where the caller's domain leads: only served domains may call (no open relay).
pub fn check_caller_domain(served: bool) -> Result<(), Refusal> {
    if served {
        Ok(())
    } else {
        Err(Refusal::new(403, "Relaying Denied"))
    }
}

/// The plan for a call to `callee` (`None`: no such subscriber).
pub fn plan_call(callee: Option<Callee<'_>>) -> Result<CallPlan, Refusal> {
    let Some(callee) = callee else {
        return Err(Refusal::new(404, "Not Found"));
    };
    let fallbacks = Fallbacks::default();
    if !callee.active || callee.bindings.is_empty() {
        // Not registered: the offline outcome before any attempt.
        return Err(match fallbacks.after(Outcome::Offline, None) {
            Ending::Respond(refusal) => refusal,
            Ending::RelayBest => UNAVAILABLE,
        });
    }
    Ok(CallPlan {
        steps: steps_by_q(callee.bindings),
        fallbacks,
    })
}

/// Contacts grouped by q-value, highest first; within a group the given order stays.
fn steps_by_q(contacts: &[Contact]) -> Vec<PlanStep> {
    let mut ordered: Vec<&Contact> = contacts.iter().collect();
    // Stable: equal q-values keep the location service's order.
    ordered.sort_by_key(|contact| std::cmp::Reverse(contact.q));
    let mut steps: Vec<(u16, PlanStep)> = Vec::new();
    for contact in ordered {
        match steps.last_mut() {
            Some((q, step)) if *q == contact.q => step.targets.push(contact.target.clone()),
            _ => steps.push((
                contact.q,
                PlanStep {
                    targets: vec![contact.target.clone()],
                },
            )),
        }
    }
    steps.into_iter().map(|(_, step)| step).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn contact(name: &str, q: u16) -> Contact {
        Contact {
            target: ForkTarget {
                contact: format!("sip:{name}@192.0.2.1"),
                path: Vec::new(),
                received: None,
            },
            q,
        }
    }

    fn names(plan: &CallPlan) -> Vec<Vec<String>> {
        plan.steps
            .iter()
            .map(|step| {
                step.targets
                    .iter()
                    .map(|target| target.contact.clone())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn refusals_as_the_anchor_words_them() {
        let alice = Identity {
            user: "alice",
            domain: "example.org",
        };
        let mallory = Identity {
            user: "mallory",
            domain: "example.org",
        };
        assert_eq!(check_identity(alice, alice), Ok(()));
        assert_eq!(
            check_identity(alice, mallory),
            Err(Refusal::new(403, "Forbidden - From Identity Mismatch"))
        );
        assert_eq!(check_caller_domain(false).unwrap_err().status, 403);
        assert_eq!(
            check_callee_domain(false),
            Err(Refusal::new(404, "Not Found - No Route"))
        );
        assert_eq!(plan_call(None), Err(Refusal::new(404, "Not Found")));
        let offline = Callee {
            active: true,
            bindings: &[],
        };
        assert_eq!(
            plan_call(Some(offline)),
            Err(Refusal::new(480, "Temporarily Unavailable"))
        );
        let locked = Callee {
            active: false,
            bindings: &[contact("a", 1000)],
        };
        assert_eq!(plan_call(Some(locked)).unwrap_err().status, 480);
    }

    #[test]
    fn equal_q_values_ring_together_and_higher_ones_first() {
        let bindings = [
            contact("desk", 500),
            contact("mobile", 1000),
            contact("soft", 500),
            contact("tablet", 1000),
            contact("old", 100),
        ];
        let plan = plan_call(Some(Callee {
            active: true,
            bindings: &bindings,
        }))
        .unwrap();
        assert_eq!(
            names(&plan),
            [
                vec!["sip:mobile@192.0.2.1", "sip:tablet@192.0.2.1"],
                vec!["sip:desk@192.0.2.1", "sip:soft@192.0.2.1"],
                vec!["sip:old@192.0.2.1"],
            ]
        );
    }

    #[test]
    fn outcomes_as_call_features_read_them() {
        let ended = |best, rang_out| classify(Attempts { best, rang_out });
        assert_eq!(ended(Some(486), false), Outcome::Busy);
        assert_eq!(ended(Some(600), true), Outcome::Busy);
        assert_eq!(ended(Some(408), true), Outcome::NoAnswer);
        // A 408 the callee's side sent, or a transaction timeout: unreachable, not unanswered.
        assert_eq!(ended(Some(408), false), Outcome::Offline);
        assert_eq!(ended(Some(480), false), Outcome::Offline);
        assert_eq!(ended(Some(503), false), Outcome::Offline);
        assert_eq!(ended(None, false), Outcome::Offline);
        assert_eq!(ended(Some(403), false), Outcome::Failed);
        assert_eq!(ended(Some(603), true), Outcome::Failed);
    }

    #[test]
    fn the_default_relays_the_best_response_and_480_when_none() {
        let plan = plan_call(Some(Callee {
            active: true,
            bindings: &[contact("a", 1000)],
        }))
        .unwrap();
        for outcome in [
            Outcome::Busy,
            Outcome::NoAnswer,
            Outcome::Offline,
            Outcome::Failed,
        ] {
            assert_eq!(plan.fallbacks.after(outcome, Some(486)), Ending::RelayBest);
            assert_eq!(
                plan.fallbacks.after(outcome, None),
                Ending::Respond(Refusal::new(480, "Temporarily Unavailable"))
            );
        }
    }

    #[test]
    fn a_refusing_continuation_replaces_only_its_own_outcome() {
        let forward = Refusal::new(302, "Moved Temporarily");
        let fallbacks = Fallbacks {
            busy: Continuation::Refuse(forward),
            ..Fallbacks::default()
        };
        assert_eq!(
            fallbacks.after(Outcome::Busy, Some(486)),
            Ending::Respond(forward)
        );
        assert_eq!(
            fallbacks.after(Outcome::Failed, Some(486)),
            Ending::RelayBest
        );
    }

    fn any_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Busy),
            Just(Outcome::NoAnswer),
            Just(Outcome::Offline),
            Just(Outcome::Failed),
        ]
    }

    proptest! {
        /// Every final status falls in exactly the class its rule names; the ring timer only
        /// ever turns a 408 into "no answer".
        #[test]
        fn classification_is_total_and_the_ring_timer_only_moves_408(
            best in proptest::option::of(300u16..700),
            rang_out: bool,
        ) {
            let outcome = classify(Attempts { best, rang_out });
            let without_timer = classify(Attempts { best, rang_out: false });
            if outcome != without_timer {
                prop_assert_eq!(best, Some(408));
                prop_assert_eq!(outcome, Outcome::NoAnswer);
            }
            prop_assert_eq!(outcome == Outcome::Busy, matches!(best, Some(486 | 600)));
        }

        /// A fallback set for one outcome never changes what another outcome leads to.
        #[test]
        fn fallbacks_are_independent(
            chosen in any_outcome(),
            other in any_outcome(),
            best in proptest::option::of(300u16..700),
        ) {
            let refusal = Refusal::new(302, "Moved Temporarily");
            let mut fallbacks = Fallbacks::default();
            match chosen {
                Outcome::Busy => fallbacks.busy = Continuation::Refuse(refusal),
                Outcome::NoAnswer => fallbacks.no_answer = Continuation::Refuse(refusal),
                Outcome::Offline => fallbacks.offline = Continuation::Refuse(refusal),
                Outcome::Failed => fallbacks.failed = Continuation::Refuse(refusal),
            }
            let expected = if other == chosen {
                Ending::Respond(refusal)
            } else {
                Fallbacks::default().after(other, best)
            };
            prop_assert_eq!(fallbacks.after(other, best), expected);
        }

        /// Every contact is tried exactly once, steps go down in q, a step holds one q-value.
        #[test]
        fn every_contact_once_in_q_order(qs in proptest::collection::vec(0u16..=1000, 1..12)) {
            let bindings: Vec<Contact> = qs
                .iter()
                .enumerate()
                .map(|(index, &q)| contact(&format!("c{index}"), q))
                .collect();
            let plan = plan_call(Some(Callee { active: true, bindings: &bindings })).unwrap();
            let q_of = |target: &ForkTarget| {
                bindings.iter().find(|c| &c.target == target).map(|c| c.q).unwrap()
            };
            let mut seen: Vec<&ForkTarget> = plan.steps.iter().flat_map(|s| &s.targets).collect();
            prop_assert_eq!(seen.len(), bindings.len());
            seen.sort_by(|a, b| a.contact.cmp(&b.contact));
            seen.dedup();
            prop_assert_eq!(seen.len(), bindings.len());
            let step_qs: Vec<u16> = plan.steps.iter().map(|s| q_of(&s.targets[0])).collect();
            for pair in step_qs.windows(2) {
                prop_assert!(pair[0] > pair[1]);
            }
            for (step, q) in plan.steps.iter().zip(&step_qs) {
                prop_assert!(step.targets.iter().all(|t| q_of(t) == *q));
            }
        }
    }
}
