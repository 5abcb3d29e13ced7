//! Tests of the rewrite engine: the replacement syntax rule by rule, the ngcp example, first
//! match wins, and properties over arbitrary input.

use proptest::prelude::*;

use super::*;

const IN: RewriteDirection = RewriteDirection::In;
const OUT: RewriteDirection = RewriteDirection::Out;
const CALLER: RewriteField = RewriteField::Caller;
const CALLEE: RewriteField = RewriteField::Callee;

fn rule(id: i64, priority: i64, match_pattern: &str, replace_pattern: &str) -> RewriteRule {
    RewriteRule {
        id,
        set_id: 1,
        match_pattern: match_pattern.into(),
        replace_pattern: replace_pattern.into(),
        description: String::new(),
        direction: IN,
        field: CALLEE,
        priority,
        enabled: true,
    }
}

fn with(direction: RewriteDirection, field: RewriteField, rule: RewriteRule) -> RewriteRule {
    RewriteRule {
        direction,
        field,
        ..rule
    }
}

/// An Austrian subscriber in Vienna: cc 43, ac 1, sn 234567.
fn vienna() -> RewriteVariables {
    RewriteVariables {
        caller_cc: Some("43".into()),
        caller_ac: Some("1".into()),
        caller_sn: Some("234567".into()),
        callee_cc: Some("49".into()),
        callee_ac: Some("30".into()),
        callee_sn: Some("111".into()),
    }
}

/// The result of one rule `match_pattern` → `replace_pattern` on `number`.
fn one(
    match_pattern: &str,
    replace_pattern: &str,
    number: &str,
    vars: &RewriteVariables,
) -> Rewritten {
    let set = CompiledRuleSet::new(&[rule(7, 50, match_pattern, replace_pattern)]);
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    set.apply(IN, CALLEE, number, vars)
}

fn expand(match_pattern: &str, replace_pattern: &str, number: &str) -> String {
    let out = one(match_pattern, replace_pattern, number, &vienna());
    assert_eq!(
        out.rule_id,
        Some(7),
        "{match_pattern} did not match {number}"
    );
    out.number
}

// --- Replacement syntax -------------------------------------------------------------------

#[test]
fn backslash_digit_is_a_capture_group() {
    assert_eq!(expand("^0([1-9])([0-9]+)$", r"\2-\1", "0123"), "23-1");
    assert_eq!(
        expand(
            "^(1)(2)(3)(4)(5)(6)(7)(8)(9)$",
            r"\9\8\7\6\5\4\3\2\1",
            "123456789"
        ),
        "987654321"
    );
}

#[test]
fn backslash_zero_is_the_whole_match() {
    assert_eq!(expand("0[1-9]", r"<\0>", "x01y"), "<01>");
}

#[test]
fn group_references_take_one_digit() {
    assert_eq!(expand("^(1)$", r"\10", "1"), "10");
}

#[test]
fn double_backslash_is_one_backslash() {
    assert_eq!(expand("^(1)$", r"a\\b", "1"), r"a\b");
    // `\\1` is a backslash then the text `1`, not a group.
    assert_eq!(expand("^(9)$", r"\\1", "9"), r"\1");
    assert_eq!(expand("^(9)$", r"\\\1", "9"), r"\9");
}

#[test]
fn other_backslashes_are_literal() {
    assert_eq!(expand("^1$", r"a\b", "1"), r"a\b");
    assert_eq!(expand("^1$", r"a\", "1"), r"a\");
    assert_eq!(expand("^1$", r"\$x", "1"), r"\$x");
}

#[test]
fn variables_expand_to_their_values() {
    assert_eq!(
        expand("^1$", "${caller_cc}${caller_ac}${caller_sn}", "1"),
        "431234567"
    );
    assert_eq!(
        expand("^1$", "${callee_cc}/${callee_ac}/${callee_sn}", "1"),
        "49/30/111"
    );
    assert_eq!(
        expand("^([0-9]+)$", r"${caller_cc}\1${caller_cc}", "5"),
        "43543"
    );
}

#[test]
fn an_unset_variable_expands_to_nothing() {
    let out = one(
        "^0([1-9][0-9]+)$",
        r"${caller_cc}\1",
        "0123",
        &RewriteVariables::default(),
    );
    assert_eq!(out.number, "123");
    let partial = RewriteVariables {
        caller_cc: Some("43".into()),
        ..RewriteVariables::default()
    };
    let out = one(
        "^([1-9][0-9]+)$",
        r"${caller_cc}${caller_ac}\1",
        "234567",
        &partial,
    );
    assert_eq!(out.number, "43234567");
}

#[test]
fn a_dollar_that_is_no_known_variable_stays_literal() {
    assert_eq!(expand("^1$", "$x", "1"), "$x");
    assert_eq!(expand("^1$", "a$", "1"), "a$");
    assert_eq!(expand("^(1)$", "$1", "1"), "$1");
    assert_eq!(expand("^1$", "$$", "1"), "$$");
    assert_eq!(expand("^1$", "${unknown}", "1"), "${unknown}");
    assert_eq!(expand("^1$", "${CALLER_CC}", "1"), "${CALLER_CC}");
    assert_eq!(expand("^1$", "${caller_cc", "1"), "${caller_cc");
    assert_eq!(expand("^1$", "$${caller_cc}", "1"), "$43");
    assert_eq!(expand("^1$", "${}", "1"), "${}");
}

#[test]
fn non_ascii_text_is_copied() {
    assert_eq!(expand("^(1)$", "ä\\1€$", "1"), "ä1€$");
}

#[test]
fn a_group_that_did_not_take_part_expands_to_nothing() {
    assert_eq!(expand("^(0)?([1-9]+)$", r"[\1]\2", "12"), "[]12");
}

#[test]
fn the_result_is_the_replacement_alone() {
    // Kamailio's rule_translate: the unmatched rest of the number is not kept.
    assert_eq!(expand("0", "X", "1023"), "X");
    assert_eq!(expand("^00", "+", "0049301"), "+");
    assert_eq!(expand("^00(.*)$", r"+\1", "0049301"), "+49301");
}

#[test]
fn an_empty_replacement_gives_an_empty_number() {
    assert_eq!(expand("^1$", "", "1"), "");
}

#[test]
fn parsed_replacements_keep_text_together() {
    assert_eq!(
        Replacement::parse(r"a\1b${caller_cc}\\c").pieces,
        vec![
            Piece::Text("a".into()),
            Piece::Group(1),
            Piece::Text("b".into()),
            Piece::Var(Variable::CallerCc),
            Piece::Text(r"\c".into()),
        ]
    );
    assert_eq!(Replacement::parse("").pieces, vec![]);
    assert_eq!(Replacement::parse(r"\3\0").max_group(), Some(3));
    assert_eq!(Replacement::parse(r"\\3 $3").max_group(), None);
}

#[test]
fn every_documented_variable_name_is_known() {
    for name in RewriteVariables::NAMES {
        assert!(Variable::from_name(name).is_some(), "{name}");
    }
}

#[test]
fn variables_come_from_numbers() {
    let number = |cc: &str, ac: &str, sn: &str| Number {
        id: 1,
        subscriber_id: 1,
        cc: cc.into(),
        ac: ac.into(),
        sn: sn.into(),
        e164: format!("{cc}{ac}{sn}"),
        is_primary: true,
        is_devid: false,
    };
    let vars = RewriteVariables::default()
        .with_caller(&number("43", "1", "234567"))
        .with_callee(&number("49", "", "777"));
    assert_eq!(vars.caller_cc.as_deref(), Some("43"));
    assert_eq!(vars.caller_ac.as_deref(), Some("1"));
    assert_eq!(vars.caller_sn.as_deref(), Some("234567"));
    assert_eq!(vars.callee_cc.as_deref(), Some("49"));
    assert_eq!(vars.callee_ac.as_deref(), Some(""));
    assert_eq!(vars.callee_sn.as_deref(), Some("777"));
}

// --- The ngcp example (features.md, number normalisation) --------------------------------

#[test]
fn austrian_subscriber_dials_national_and_the_peer_gets_national() {
    let vars = RewriteVariables {
        caller_cc: Some("43".into()),
        caller_ac: Some("1".into()),
        ..RewriteVariables::default()
    };
    let set = CompiledRuleSet::new(&[
        rule(1, 50, "^0([1-9][0-9]+)$", r"${caller_cc}\1"),
        rule(2, 60, "^([1-9][0-9]+)$", r"${caller_cc}${caller_ac}\1"),
        with(OUT, CALLEE, rule(3, 50, "^43(.+)$", r"0\1")),
    ]);
    let normalised = set.apply(IN, CALLEE, "01234567", &vars);
    assert_eq!(
        normalised,
        Rewritten {
            number: "431234567".into(),
            rule_id: Some(1),
        }
    );
    // A local number gets the area code too.
    assert_eq!(set.apply(IN, CALLEE, "234567", &vars).number, "431234567");
    // On the way out to the PSTN peer, E.164 is rendered national.
    let rendered = set.apply(OUT, CALLEE, &normalised.number, &vars);
    assert_eq!(rendered.number, "01234567");
    assert_eq!(rendered.rule_id, Some(3));
    // A foreign E.164 number has no outbound rule and passes unchanged.
    assert_eq!(
        set.apply(OUT, CALLEE, "4930111", &vars),
        Rewritten {
            number: "4930111".into(),
            rule_id: None,
        }
    );
}

// --- Which rule applies ------------------------------------------------------------------

#[test]
fn the_first_matching_rule_by_priority_wins_and_nothing_chains() {
    let set = CompiledRuleSet::new(&[
        rule(1, 50, "^0([1-9][0-9]+)$", r"43\1"),
        rule(2, 10, "^00([1-9][0-9]+)$", r"\1"),
        // Would match the output of rule 1 or 2, but nothing runs after the first match.
        rule(3, 90, "^4", "chained"),
    ]);
    assert_eq!(set.rule_ids(IN, CALLEE), vec![2, 1, 3]);
    let out = set.apply(IN, CALLEE, "004912345", &vienna());
    assert_eq!((out.number.as_str(), out.rule_id), ("4912345", Some(2)));
    let out = set.apply(IN, CALLEE, "01234567", &vienna());
    assert_eq!((out.number.as_str(), out.rule_id), ("431234567", Some(1)));
    let out = set.apply(IN, CALLEE, "4711", &vienna());
    assert_eq!((out.number.as_str(), out.rule_id), ("chained", Some(3)));
}

#[test]
fn equal_priorities_run_in_id_order() {
    let set = CompiledRuleSet::new(&[rule(9, 5, "^1", "nine"), rule(4, 5, "^1", "four")]);
    assert_eq!(set.rule_ids(IN, CALLEE), vec![4, 9]);
    assert_eq!(set.apply(IN, CALLEE, "1", &vienna()).number, "four");
}

#[test]
fn disabled_rules_are_skipped() {
    let disabled = RewriteRule {
        enabled: false,
        ..rule(1, 1, ".*", "dropped")
    };
    let set = CompiledRuleSet::new(&[disabled, rule(2, 50, "^0(.+)$", r"43\1")]);
    assert_eq!(set.rule_ids(IN, CALLEE), vec![2]);
    assert!(set.skipped().is_empty());
    assert_eq!(set.apply(IN, CALLEE, "01", &vienna()).number, "431");
    assert_eq!(set.apply(IN, CALLEE, "99", &vienna()).rule_id, None);
}

#[test]
fn each_list_is_separate() {
    let set = CompiledRuleSet::new(&[
        with(IN, CALLER, rule(1, 50, "^(.*)$", r"ci\1")),
        with(IN, CALLEE, rule(2, 50, "^(.*)$", r"ce\1")),
        with(OUT, CALLER, rule(3, 50, "^(.*)$", r"co\1")),
        with(OUT, CALLEE, rule(4, 50, "^(.*)$", r"eo\1")),
    ]);
    assert_eq!(set.len(), 4);
    assert!(!set.is_empty());
    let vars = vienna();
    assert_eq!(set.apply(IN, CALLER, "1", &vars).number, "ci1");
    assert_eq!(set.apply(IN, CALLEE, "1", &vars).number, "ce1");
    assert_eq!(set.apply(OUT, CALLER, "1", &vars).number, "co1");
    assert_eq!(set.apply(OUT, CALLEE, "1", &vars).number, "eo1");
    assert_eq!(set.rule_ids(OUT, CALLER), vec![3]);
}

#[test]
fn an_empty_set_changes_nothing() {
    let set = CompiledRuleSet::new(&[]);
    assert!(set.is_empty());
    assert_eq!(
        set.apply(IN, CALLEE, "0123", &vienna()),
        Rewritten {
            number: "0123".into(),
            rule_id: None,
        }
    );
    assert!(!set.apply(IN, CALLEE, "0123", &vienna()).matched());
}

#[test]
fn bad_stored_rules_are_skipped_with_their_id() {
    let set = CompiledRuleSet::new(&[
        rule(1, 10, "^(unclosed", "x"),
        rule(2, 20, "^0([1-9])$", r"\2"),
        rule(3, 30, "", "empty pattern"),
        rule(4, 40, "^0(.*)$", r"43\1"),
        RewriteRule {
            enabled: false,
            ..rule(5, 1, "^(disabled and bad", "x")
        },
    ]);
    let skipped: Vec<i64> = set.skipped().iter().map(|s| s.id).collect();
    assert_eq!(skipped, vec![1, 2, 3]);
    assert!(
        set.skipped()[0].reason.contains("match_pattern"),
        "{:?}",
        set.skipped()
    );
    assert!(
        set.skipped()[1].reason.contains("replace_pattern"),
        "{:?}",
        set.skipped()
    );
    assert_eq!(set.rule_ids(IN, CALLEE), vec![4]);
    assert_eq!(set.apply(IN, CALLEE, "01", &vienna()).number, "431");
}

// --- Properties ----------------------------------------------------------------------------

/// Replacement text with no group reference, no `\\` and no known variable: digits and a few
/// letters (no `_`, so `${…}` never names a variable), `$`, braces, and backslashes followed by
/// something other than a digit or a backslash (or nothing, at the end).
fn plain_replacement() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![
                "[0-9a-f+*#]",
                Just("$".to_owned()),
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just("${".to_owned()),
                "\\\\[a-z+*#{}$]",
            ],
            0..24,
        ),
        any::<bool>(),
    )
        .prop_map(|(pieces, trailing_backslash)| {
            let mut text = pieces.concat();
            if trailing_backslash {
                text.push('\\');
            }
            text
        })
}

fn any_direction() -> impl Strategy<Value = RewriteDirection> {
    prop_oneof![Just(IN), Just(OUT)]
}

fn any_field() -> impl Strategy<Value = RewriteField> {
    prop_oneof![Just(CALLER), Just(CALLEE)]
}

fn any_variables() -> impl Strategy<Value = RewriteVariables> {
    let value = || prop::option::of("[0-9]{0,4}");
    (value(), value(), value(), value(), value(), value()).prop_map(
        |(caller_cc, caller_ac, caller_sn, callee_cc, callee_ac, callee_sn)| RewriteVariables {
            caller_cc,
            caller_ac,
            caller_sn,
            callee_cc,
            callee_ac,
            callee_sn,
        },
    )
}

/// Patterns that compile, with and without groups.
fn any_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("^0([1-9][0-9]+)$".to_owned()),
        Just("^(0)?([1-9])(.*)$".to_owned()),
        Just("(x)?".to_owned()),
        Just("^$".to_owned()),
        Just("(.)(.)(.)(.)(.)(.)(.)(.)(.)".to_owned()),
        Just(".*".to_owned()),
        "[0-9]{1,3}",
        "\\^[0-9]{0,3}\\(\\.\\*\\)",
    ]
}

proptest! {
    #[test]
    fn a_plain_replacement_is_returned_verbatim(
        replacement in plain_replacement(),
        number in "[0-9]{1,16}",
        vars in any_variables(),
    ) {
        let out = one("^([0-9])([0-9]*)$", &replacement, &number, &vars);
        prop_assert_eq!(out.rule_id, Some(7));
        prop_assert_eq!(out.number, replacement);
    }

    #[test]
    fn rules_that_match_nothing_leave_the_number_alone(
        number in "\\+?[0-9]{0,20}",
        rules in prop::collection::vec(
            ("[a-z]{1,6}", "\\PC{0,12}", any_direction(), any_field(), -5i64..5, any::<bool>()),
            0..8,
        ),
        direction in any_direction(),
        field in any_field(),
        vars in any_variables(),
    ) {
        // Lower-case letters only: a pattern of them can never match a number of digits.
        let rules: Vec<RewriteRule> = rules
            .into_iter()
            .enumerate()
            .map(|(i, (pattern, replacement, direction, field, priority, enabled))| RewriteRule {
                enabled,
                ..with(direction, field, rule(i as i64 + 1, priority, &pattern, &replacement))
            })
            .collect();
        let set = CompiledRuleSet::new(&rules);
        let out = set.apply(direction, field, &number, &vars);
        prop_assert_eq!(out.rule_id, None);
        prop_assert_eq!(out.number, number);
    }

    #[test]
    fn the_first_matching_rule_by_priority_then_id_is_the_one_applied(
        number in "[0-9]{0,8}",
        rules in prop::collection::vec(
            (any_pattern(), "[0-9a-z]{0,6}", -3i64..3, any::<bool>()),
            0..8,
        ),
        vars in any_variables(),
    ) {
        let rules: Vec<RewriteRule> = rules
            .into_iter()
            .enumerate()
            .map(|(i, (pattern, replacement, priority, enabled))| RewriteRule {
                enabled,
                ..rule(i as i64 + 1, priority, &pattern, &replacement)
            })
            .collect();
        let expected = rules
            .iter()
            .filter(|r| r.enabled && regex::Regex::new(&r.match_pattern).unwrap().is_match(&number))
            .min_by_key(|r| (r.priority, r.id))
            .map(|r| r.id);
        let out = CompiledRuleSet::new(&rules).apply(IN, CALLEE, &number, &vars);
        prop_assert_eq!(out.rule_id, expected);
        if expected.is_none() {
            prop_assert_eq!(out.number, number);
        }
    }

    #[test]
    fn translation_never_panics(
        patterns in prop::collection::vec(prop_oneof![any_pattern(), "\\PC{0,12}"], 1..6),
        replacement in prop_oneof![
            any::<String>(),
            "[\\\\${}a-z_0-9]{0,32}",
            "(\\$\\{(caller|callee)_(cc|ac|sn)\\}|\\\\[0-9\\\\]|[0-9$\\\\])*",
        ],
        number in prop_oneof![any::<String>(), "[0-9+]{0,24}"],
        vars in any_variables(),
        direction in any_direction(),
        field in any_field(),
    ) {
        let rules: Vec<RewriteRule> = patterns
            .iter()
            .enumerate()
            .map(|(i, pattern)| with(direction, field, rule(i as i64 + 1, 0, pattern, &replacement)))
            .collect();
        let set = CompiledRuleSet::new(&rules);
        prop_assert_eq!(set.len() + set.skipped().len(), rules.len());
        let out = set.apply(direction, field, &number, &vars);
        if out.rule_id.is_none() {
            prop_assert_eq!(out.number, number);
        }
    }
}
