use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::*;

const CALLER: &str = "sip:alice@example.org";
const CALLEE: &str = "sip:4930123456@example.org";
const NUMBER: &str = "4930123456";

fn call() -> CallForPeering<'static> {
    CallForPeering {
        caller_uri: CALLER,
        callee_uri: CALLEE,
        callee_number: NUMBER,
    }
}

fn group(id: i64, priority: i64) -> Group {
    Group { id, priority }
}

fn rule(id: i64, group_id: i64, callee_prefix: &str) -> Rule<'_> {
    Rule {
        id,
        group_id,
        callee_prefix,
        caller_pattern: None,
        callee_pattern: None,
        enabled: true,
        stopper: false,
    }
}

/// Server `id` at 192.0.2.<id>:5060 over UDP, weight 1.
fn server(id: i64, group_id: i64) -> Server<'static> {
    let ip: &'static str = Box::leak(format!("192.0.2.{id}").into_boxed_str());
    Server {
        id,
        group_id,
        ip,
        host: None,
        port: 5060,
        transport: Transport::Udp,
        weight: 1,
        enabled: true,
    }
}

fn rng(seed: u64) -> impl FnMut() -> u32 {
    let mut rng = StdRng::seed_from_u64(seed);
    move || rng.next_u32()
}

fn plan(groups: &[Group], rules: &[Rule<'_>], servers: &[Server<'_>]) -> PeeringPlan {
    let (table, bad) = PeeringTable::new(groups, rules, servers);
    assert_eq!(bad, []);
    table.select(&call(), &mut rng(1))
}

fn server_ids(plan: &PeeringPlan) -> Vec<i64> {
    plan.attempts.iter().map(|a| a.server_id).collect()
}

#[test]
fn groups_go_by_priority_one_first() {
    let groups = [group(1, 2), group(2, 1), group(3, 3)];
    let rules = [rule(1, 1, ""), rule(2, 2, ""), rule(3, 3, "")];
    let servers = [server(10, 1), server(20, 2), server(30, 3)];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [20, 10, 30]);
}

#[test]
fn the_longest_prefix_goes_first_among_equal_priorities_only() {
    let groups = [group(1, 1), group(2, 1), group(3, 1), group(4, 2)];
    let rules = [
        rule(1, 1, "49"),
        rule(2, 2, "4930"),
        rule(3, 3, ""),
        // Longer still, but a lower priority: priority wins.
        rule(4, 4, "493012"),
        // Does not match the callee at all.
        rule(5, 3, "43"),
    ];
    let servers = [server(10, 1), server(20, 2), server(30, 3), server(40, 4)];
    assert_eq!(
        server_ids(&plan(&groups, &rules, &servers)),
        [20, 10, 30, 40]
    );
}

#[test]
fn a_group_comes_at_its_best_rule() {
    let groups = [group(1, 1), group(2, 1)];
    let rules = [rule(1, 1, "4"), rule(2, 2, "49"), rule(3, 1, "493")];
    let servers = [server(10, 1), server(20, 2)];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [10, 20]);
}

#[test]
fn no_matching_rule_gives_an_empty_plan() {
    let groups = [group(1, 1)];
    let rules = [rule(1, 1, "43"), rule(2, 1, "493012345678")];
    let plan = plan(&groups, &rules, &[server(10, 1)]);
    assert!(plan.is_empty());
    let (table, _) = PeeringTable::new(&[], &[], &[]);
    assert!(table.select(&call(), &mut rng(1)).is_empty());
}

#[test]
fn caller_and_callee_patterns_must_both_match() {
    let groups = [group(1, 1), group(2, 1), group(3, 1), group(4, 1)];
    let rules = [
        Rule {
            caller_pattern: Some("^sip:alice@"),
            ..rule(1, 1, "")
        },
        Rule {
            caller_pattern: Some("^sip:bob@"),
            ..rule(2, 2, "")
        },
        Rule {
            callee_pattern: Some(r"^sip:49\d+@example\.org$"),
            caller_pattern: Some(""),
            ..rule(3, 3, "")
        },
        Rule {
            callee_pattern: Some(r"@example\.com"),
            ..rule(4, 4, "")
        },
    ];
    let servers = [server(10, 1), server(20, 2), server(30, 3), server(40, 4)];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [10, 30]);
}

#[test]
fn a_stopper_ends_the_search_after_its_rank() {
    let groups = [group(1, 1), group(2, 1), group(3, 1), group(4, 2)];
    let rules = [
        Rule {
            stopper: true,
            ..rule(1, 1, "49")
        },
        // Same rank as the stopper: still in.
        rule(2, 2, "49"),
        // Same priority, shorter prefix: out.
        rule(3, 3, "4"),
        // Lower priority: out.
        rule(4, 4, ""),
    ];
    let servers = [server(10, 1), server(20, 2), server(30, 3), server(40, 4)];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [10, 20]);
}

#[test]
fn a_stopper_that_does_not_match_stops_nothing() {
    let groups = [group(1, 1), group(2, 2)];
    let rules = [
        Rule {
            stopper: true,
            ..rule(1, 1, "43")
        },
        rule(2, 1, "49"),
        rule(3, 2, ""),
    ];
    let servers = [server(10, 1), server(20, 2)];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [10, 20]);
}

#[test]
fn a_stopper_keeps_what_ranked_before_it() {
    let groups = [group(1, 1), group(2, 2), group(3, 3)];
    let rules = [
        rule(1, 1, ""),
        Rule {
            stopper: true,
            ..rule(2, 2, "")
        },
        rule(3, 3, "49"),
    ];
    let servers = [server(10, 1), server(20, 2), server(30, 3)];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [10, 20]);
}

#[test]
fn disabled_rules_and_servers_are_skipped() {
    let groups = [group(1, 1), group(2, 2)];
    let rules = [
        Rule {
            enabled: false,
            stopper: true,
            ..rule(1, 1, "49")
        },
        rule(2, 2, ""),
    ];
    let servers = [
        server(10, 1),
        server(20, 2),
        Server {
            enabled: false,
            ..server(21, 2)
        },
    ];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [20]);
}

#[test]
fn a_destination_is_tried_once_at_its_first_place() {
    let groups = [group(1, 1), group(2, 2)];
    let rules = [rule(1, 1, ""), rule(2, 2, "")];
    let same_box = Server {
        ip: "192.0.2.10",
        ..server(20, 2)
    };
    let other_port = Server {
        ip: "192.0.2.10",
        port: 5080,
        ..server(21, 2)
    };
    let servers = [server(10, 1), same_box, other_port];
    assert_eq!(server_ids(&plan(&groups, &rules, &servers)), [10, 21]);
}

#[test]
fn bad_records_are_reported_and_left_out() {
    let groups = [group(1, 1)];
    let rules = [
        Rule {
            caller_pattern: Some("^(unclosed"),
            ..rule(1, 1, "")
        },
        Rule {
            callee_pattern: Some("(?=lookahead)"),
            ..rule(2, 1, "")
        },
        rule(3, 99, ""),
        Rule {
            enabled: false,
            caller_pattern: Some("[bad"),
            ..rule(4, 1, "")
        },
        rule(5, 1, "49"),
    ];
    let servers = [
        Server {
            ip: "not-an-ip",
            ..server(10, 1)
        },
        server(11, 1),
    ];
    let (table, bad) = PeeringTable::new(&groups, &rules, &servers);
    let reported: Vec<(RecordKind, i64)> = bad.iter().map(|b| (b.kind, b.id)).collect();
    assert_eq!(
        reported,
        [
            (RecordKind::Rule, 1),
            (RecordKind::Rule, 2),
            (RecordKind::Rule, 3),
            (RecordKind::Server, 10)
        ]
    );
    assert!(bad[0].error.contains("caller_pattern"), "{}", bad[0].error);
    assert!(bad[2].error.contains("no peering group 99"));
    assert_eq!(server_ids(&table.select(&call(), &mut rng(1))), [11]);
}

#[test]
fn the_one_shot_select_matches_the_table() {
    let groups = [group(1, 2), group(2, 1)];
    let rules = [rule(1, 1, ""), rule(2, 2, "49")];
    let servers = [server(10, 1), server(20, 2), server(21, 2)];
    let (table, _) = PeeringTable::new(&groups, &rules, &servers);
    assert_eq!(
        select(&groups, &rules, &servers, &call(), &mut rng(5)),
        table.select(&call(), &mut rng(5))
    );
}

#[test]
fn request_uris_and_destinations() {
    let groups = [group(1, 1)];
    let rules = [rule(1, 1, "")];
    let servers = [
        Server {
            weight: 127,
            ..server(1, 1)
        },
        Server {
            ip: "2001:db8::1",
            port: 5061,
            transport: Transport::Tls,
            weight: 64,
            ..server(2, 1)
        },
        Server {
            host: Some("sip.carrier.example"),
            port: 5080,
            transport: Transport::Tcp,
            weight: 32,
            ..server(3, 1)
        },
        Server {
            ip: "2001:db8::2",
            host: Some(""),
            weight: 16,
            ..server(4, 1)
        },
        Server {
            ip: "2001:db8::3",
            host: Some("2001:db8::4"),
            weight: 8,
            ..server(5, 1)
        },
    ];
    let (table, _) = PeeringTable::new(&groups, &rules, &servers);
    let plan = table.select(&call(), &mut rng(3));
    let mut uris: Vec<(i64, String, SocketAddr, Transport)> = plan
        .attempts
        .iter()
        .map(|a| {
            (
                a.server_id,
                a.request_uri.clone(),
                a.destination(),
                a.transport,
            )
        })
        .collect();
    uris.sort_by_key(|(id, ..)| *id);
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(
        uris,
        [
            (
                1,
                "sip:4930123456@192.0.2.1:5060".to_owned(),
                addr("192.0.2.1:5060"),
                Transport::Udp
            ),
            (
                2,
                "sip:4930123456@[2001:db8::1]:5061;transport=tls".to_owned(),
                addr("[2001:db8::1]:5061"),
                Transport::Tls
            ),
            (
                3,
                "sip:4930123456@sip.carrier.example;transport=tcp".to_owned(),
                addr("192.0.2.3:5080"),
                Transport::Tcp
            ),
            (
                4,
                "sip:4930123456@[2001:db8::2]:5060".to_owned(),
                addr("[2001:db8::2]:5060"),
                Transport::Udp
            ),
            (
                5,
                "sip:4930123456@[2001:db8::4]".to_owned(),
                addr("[2001:db8::3]:5060"),
                Transport::Udp
            ),
        ]
    );
}

#[test]
fn the_number_is_escaped_as_a_uri_user() {
    assert_eq!(
        request_uri("+4930 12#3", "192.0.2.1:5060"),
        "sip:+4930%2012%233@192.0.2.1:5060"
    );
    assert_eq!(request_uri("", "192.0.2.1:5060"), "sip:192.0.2.1:5060");
}

#[test]
fn store_records_convert() {
    let group = store::PeeringGroup {
        id: 7,
        name: "carrier".into(),
        priority: 3,
        description: None,
    };
    let rule = store::PeeringRule {
        id: 8,
        group_id: 7,
        callee_prefix: "49".into(),
        caller_pattern: Some("^sip:".into()),
        callee_pattern: None,
        description: String::new(),
        enabled: true,
        stopper: true,
    };
    let server = store::PeeringServer {
        id: 9,
        group_id: 7,
        name: "gw".into(),
        ip: "192.0.2.9".into(),
        host: Some("gw.example".into()),
        port: 5060,
        transport: Transport::Tcp,
        weight: 5,
        probe: false,
        enabled: true,
    };
    assert_eq!(Group::from(&group), Group { id: 7, priority: 3 });
    let converted = Rule::from(&rule);
    assert_eq!(converted.caller_pattern, Some("^sip:"));
    assert!(converted.stopper);
    let converted = Server::from(&server);
    assert_eq!(
        (converted.ip, converted.host, converted.weight),
        ("192.0.2.9", Some("gw.example"), 5)
    );
}

#[test]
fn failover_on_timeouts_and_c5_default_codes_only() {
    let codes = FailoverCodes::default();
    assert!(fails_over(None, &codes));
    for status in [408, 500, 502, 503, 504] {
        assert!(fails_over(Some(status), &codes), "{status}");
    }
    for status in [200, 302, 404, 480, 486, 487, 501, 505, 600, 603] {
        assert!(!fails_over(Some(status), &codes), "{status}");
    }
}

#[test]
fn failover_codes_are_configurable_but_never_2xx_or_6xx() {
    let codes = FailoverCodes::new([404, 486, 200, 603, 100, 404]);
    assert!(fails_over(None, &codes));
    assert!(fails_over(Some(404), &codes));
    assert!(fails_over(Some(486), &codes));
    assert!(!fails_over(Some(503), &codes));
    assert!(!fails_over(Some(200), &codes));
    assert!(!fails_over(Some(603), &codes));
    assert!(!fails_over(Some(100), &codes));
    assert!(fails_over(None, &FailoverCodes::new([])));
}

#[test]
fn the_weighted_order_puts_weight_3_first_three_times_in_four() {
    let groups = [group(1, 1)];
    let rules = [rule(1, 1, "")];
    let servers = [
        server(1, 1),
        Server {
            weight: 3,
            ..server(2, 1)
        },
    ];
    let (table, _) = PeeringTable::new(&groups, &rules, &servers);
    let mut random = rng(0x5eed);
    let draws = 4000;
    let heavy_first = (0..draws)
        .filter(|_| table.select(&call(), &mut random).attempts[0].server_id == 2)
        .count();
    let share = heavy_first as f64 / f64::from(draws);
    assert!((0.72..=0.78).contains(&share), "heavy first {share}");
}

#[test]
fn the_weighted_order_draws_without_replacement() {
    // Weights 1, 2, 7: P(first) = w / 10; P(order 7, 2, 1) = 0.7 × 2/3.
    let groups = [group(1, 1)];
    let rules = [rule(1, 1, "")];
    let servers = [
        server(1, 1),
        Server {
            weight: 2,
            ..server(2, 1)
        },
        Server {
            weight: 7,
            ..server(3, 1)
        },
    ];
    let (table, _) = PeeringTable::new(&groups, &rules, &servers);
    let mut random = rng(42);
    let draws = 6000;
    let mut first = [0u32; 3];
    let mut heavy_then_middle = 0u32;
    for _ in 0..draws {
        let ids = server_ids(&table.select(&call(), &mut random));
        first[usize::try_from(ids[0] - 1).unwrap()] += 1;
        if ids == [3, 2, 1] {
            heavy_then_middle += 1;
        }
    }
    let share = |count: u32| f64::from(count) / f64::from(draws);
    assert!((0.08..=0.12).contains(&share(first[0])), "{first:?}");
    assert!((0.17..=0.23).contains(&share(first[1])), "{first:?}");
    assert!((0.67..=0.73).contains(&share(first[2])), "{first:?}");
    let expected = 0.7 * 2.0 / 3.0;
    assert!(
        (share(heavy_then_middle) - expected).abs() <= 0.03,
        "{heavy_then_middle}"
    );
}

#[test]
fn the_same_seed_gives_the_same_plan() {
    let groups = [group(1, 1)];
    let rules = [rule(1, 1, "")];
    let servers: Vec<Server<'_>> = (1..=8)
        .map(|id| Server {
            weight: id,
            ..server(id, 1)
        })
        .collect();
    let (table, _) = PeeringTable::new(&groups, &rules, &servers);
    let first = table.select(&call(), &mut rng(99));
    assert_eq!(first, table.select(&call(), &mut rng(99)));
    assert_eq!(first.attempts.len(), 8);
}

#[derive(Debug, Clone)]
struct Config {
    priorities: Vec<i64>,
    /// (group index, prefix, enabled, stopper)
    rules: Vec<(usize, &'static str, bool, bool)>,
    /// (group index, weight, enabled)
    servers: Vec<(usize, i64, bool)>,
}

fn any_config() -> impl Strategy<Value = Config> {
    (1usize..6).prop_flat_map(|groups| {
        (
            proptest::collection::vec(1i64..=9, groups),
            proptest::collection::vec(
                (
                    0..groups,
                    proptest::sample::select(vec!["", "4", "49", "493", "4930", "43", "1"]),
                    proptest::bool::weighted(0.85),
                    proptest::bool::weighted(0.15),
                ),
                0..10,
            ),
            proptest::collection::vec(
                (0..groups, 1i64..=127, proptest::bool::weighted(0.8)),
                0..12,
            ),
        )
            .prop_map(|(priorities, rules, servers)| Config {
                priorities,
                rules,
                servers,
            })
    })
}

proptest! {
    /// Exactly the enabled servers of the groups that should be tried appear, each once;
    /// a group's servers are contiguous and come in the order of the groups' best ranks
    /// (so priority never goes up).
    #[test]
    fn every_server_of_every_selected_group_once_in_rank_order(
        config in any_config(),
        seed: u64,
    ) {
        let groups: Vec<Group> = config
            .priorities
            .iter()
            .enumerate()
            .map(|(index, &priority)| group(index as i64 + 1, priority))
            .collect();
        let rules: Vec<Rule<'_>> = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, &(g, prefix, enabled, stopper))| Rule {
                enabled,
                stopper,
                ..rule(index as i64 + 1, g as i64 + 1, prefix)
            })
            .collect();
        let servers: Vec<Server<'_>> = config
            .servers
            .iter()
            .enumerate()
            .map(|(index, &(g, weight, enabled))| Server {
                weight,
                enabled,
                ..server(index as i64 + 1, g as i64 + 1)
            })
            .collect();

        // The oracle: ranks of matching rules, cut at the best matching stopper.
        let rank = |r: &Rule<'_>| {
            (config.priorities[r.group_id as usize - 1], Reverse(r.callee_prefix.len()))
        };
        let matching: Vec<&Rule<'_>> = rules
            .iter()
            .filter(|r| r.enabled && NUMBER.starts_with(r.callee_prefix))
            .collect();
        let cut = matching.iter().filter(|r| r.stopper).map(|r| rank(r)).min();
        let mut best: HashMap<i64, (i64, Reverse<usize>)> = HashMap::new();
        for r in matching.iter().filter(|r| cut.is_none_or(|cut| rank(r) <= cut)) {
            let entry = best.entry(r.group_id).or_insert(rank(r));
            *entry = (*entry).min(rank(r));
        }
        let mut expected: Vec<i64> = servers
            .iter()
            .filter(|s| s.enabled && best.contains_key(&s.group_id))
            .map(|s| s.id)
            .collect();
        expected.sort_unstable();

        let (table, bad) = PeeringTable::new(&groups, &rules, &servers);
        prop_assert!(bad.is_empty());
        let plan = table.select(&call(), &mut rng(seed));
        let mut ids = server_ids(&plan);
        ids.sort_unstable();
        prop_assert_eq!(ids, expected);

        let group_ranks: Vec<(i64, Reverse<usize>)> =
            plan.attempts.iter().map(|a| best[&a.group_id]).collect();
        for pair in group_ranks.windows(2) {
            prop_assert!(pair[0] <= pair[1]);
        }
        let mut finished: Vec<i64> = Vec::new();
        for pair in plan.attempts.windows(2) {
            if pair[0].group_id != pair[1].group_id {
                finished.push(pair[0].group_id);
                prop_assert!(!finished.contains(&pair[1].group_id));
            }
        }
        let priorities: Vec<i64> = plan
            .attempts
            .iter()
            .map(|a| config.priorities[a.group_id as usize - 1])
            .collect();
        for pair in priorities.windows(2) {
            prop_assert!(pair[0] <= pair[1]);
        }
    }

    /// Whatever the weights and the random numbers, the order is a permutation.
    #[test]
    fn the_weighted_order_is_a_permutation(
        weights in proptest::collection::vec(-3i64..=200, 0..10),
        draws in proptest::collection::vec(any::<u32>(), 64),
    ) {
        let servers: Vec<Server<'_>> = weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Server { weight, ..server(index as i64 + 1, 1) })
            .collect();
        let (table, _) = PeeringTable::new(&[group(1, 1)], &[rule(1, 1, "")], &servers);
        let mut draws = draws.into_iter().cycle();
        let plan = table.select(&call(), &mut || draws.next().unwrap_or(0));
        let mut ids = server_ids(&plan);
        ids.sort_unstable();
        let all: Vec<i64> = (1..=weights.len() as i64).collect();
        prop_assert_eq!(ids, all);
    }

}
