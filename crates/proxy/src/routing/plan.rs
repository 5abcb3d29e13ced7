//! The call plan, pure: from plain records (who the caller proved to be, the callee as the
//! store has it, the callee's bindings) to a decision the router executes — a refusal with its
//! status and reason, or the targets to try in which order.
//!
//! Order (RFC 3261 §16.6 with q-values): contacts of the highest q ring first, all contacts of
//! one q-value in parallel; when every branch of a step has failed without a 6xx, the next
//! lower q-value rings. What a busy, unanswered or unreachable attempt leads to beyond that
//! (call forwarding, voicemail, peering) is what later features add to the plan; today the
//! best response of the last step goes to the caller (§16.7).
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

/// What the router does with a call: ring `steps` one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// Never empty.
    pub steps: Vec<PlanStep>,
}

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
    if !callee.active || callee.bindings.is_empty() {
        return Err(Refusal::new(480, "Temporarily Unavailable"));
    }
    Ok(CallPlan {
        steps: steps_by_q(callee.bindings),
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

    proptest! {
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
