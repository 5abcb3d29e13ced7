//! The rewrite rule engine: pure number normalisation, no I/O.
//!
//! A [`CompiledRuleSet`] is built once from the stored rules of one set ([`RewriteRule`]) and
//! then applied to any number of calls: the proxy calls [`CompiledRuleSet::apply`] on every call,
//! and the `applyrewrites` dry run (`RewriteRuleRepository::apply_rewrite_rules`) runs the same
//! code, so both give the same answer.
//!
//! The semantics and the replacement syntax are documented on [`CompiledRuleSet`].

use serde::{Deserialize, Serialize};

use super::{RewriteDirection, RewriteField, RewriteRule, compile_pattern};
use crate::subscriber::Number;

/// The values of the `${name}` variables of a replacement. Every field is optional; an unset
/// variable expands to the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteVariables {
    /// `${caller_cc}`: the calling subscriber's country code (e.g. `43`).
    pub caller_cc: Option<String>,
    /// `${caller_ac}`: the calling subscriber's area code (e.g. `1`).
    pub caller_ac: Option<String>,
    /// `${caller_sn}`: the calling subscriber's subscriber number.
    pub caller_sn: Option<String>,
    /// `${callee_cc}`: the called subscriber's country code.
    pub callee_cc: Option<String>,
    /// `${callee_ac}`: the called subscriber's area code.
    pub callee_ac: Option<String>,
    /// `${callee_sn}`: the called subscriber's subscriber number.
    pub callee_sn: Option<String>,
}

impl RewriteVariables {
    /// The variable names a replacement may use, as written between `${` and `}`.
    pub const NAMES: [&'static str; 6] = [
        "caller_cc",
        "caller_ac",
        "caller_sn",
        "callee_cc",
        "callee_ac",
        "callee_sn",
    ];

    /// Fills `caller_cc`, `caller_ac` and `caller_sn` from a number (the calling subscriber's
    /// primary number).
    #[must_use]
    pub fn with_caller(mut self, number: &Number) -> Self {
        self.caller_cc = Some(number.cc.clone());
        self.caller_ac = Some(number.ac.clone());
        self.caller_sn = Some(number.sn.clone());
        self
    }

    /// Fills `callee_cc`, `callee_ac` and `callee_sn` from a number (the called subscriber's
    /// primary number).
    #[must_use]
    pub fn with_callee(mut self, number: &Number) -> Self {
        self.callee_cc = Some(number.cc.clone());
        self.callee_ac = Some(number.ac.clone());
        self.callee_sn = Some(number.sn.clone());
        self
    }

    fn value(&self, variable: Variable) -> &str {
        let value = match variable {
            Variable::CallerCc => &self.caller_cc,
            Variable::CallerAc => &self.caller_ac,
            Variable::CallerSn => &self.caller_sn,
            Variable::CalleeCc => &self.callee_cc,
            Variable::CalleeAc => &self.callee_ac,
            Variable::CalleeSn => &self.callee_sn,
        };
        value.as_deref().unwrap_or_default()
    }
}

/// One of the known `${name}` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    CallerCc,
    CallerAc,
    CallerSn,
    CalleeCc,
    CalleeAc,
    CalleeSn,
}

impl Variable {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "caller_cc" => Variable::CallerCc,
            "caller_ac" => Variable::CallerAc,
            "caller_sn" => Variable::CallerSn,
            "callee_cc" => Variable::CalleeCc,
            "callee_ac" => Variable::CalleeAc,
            "callee_sn" => Variable::CalleeSn,
            _ => return None,
        })
    }
}

/// A piece of a parsed replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Copied as is.
    Text(String),
    /// A capture group (0 = the whole match).
    Group(usize),
    /// A variable.
    Var(Variable),
}

/// A replacement parsed once into literal text, group references and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replacement {
    pieces: Vec<Piece>,
}

impl Replacement {
    /// Parses the replacement syntax documented on [`CompiledRuleSet`]; never fails (anything
    /// not recognised is literal text).
    pub(crate) fn parse(replace: &str) -> Self {
        fn flush(text: &mut String, pieces: &mut Vec<Piece>) {
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(text)));
            }
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut pos = 0;
        while let Some(rest) = replace.get(pos..) {
            let Some(c) = rest.chars().next() else {
                break;
            };
            if c == '\\' {
                match rest[1..].chars().next() {
                    Some(digit @ '0'..='9') => {
                        flush(&mut text, &mut pieces);
                        pieces.push(Piece::Group(usize::from(digit as u8 - b'0')));
                        pos += 2;
                    }
                    Some('\\') => {
                        text.push('\\');
                        pos += 2;
                    }
                    _ => {
                        text.push('\\');
                        pos += 1;
                    }
                }
                continue;
            }
            if let Some(after) = rest.strip_prefix("${")
                && let Some(end) = after.find('}')
                && let Some(variable) = Variable::from_name(&after[..end])
            {
                flush(&mut text, &mut pieces);
                pieces.push(Piece::Var(variable));
                pos += 2 + end + 1;
                continue;
            }
            text.push(c);
            pos += c.len_utf8();
        }
        flush(&mut text, &mut pieces);
        Replacement { pieces }
    }

    /// The highest group referred to, if any.
    pub(crate) fn max_group(&self) -> Option<usize> {
        self.pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Group(group) => Some(*group),
                _ => None,
            })
            .max()
    }

    /// Checks that every group referred to exists in a pattern with `captures_len` groups
    /// (counting group 0, as [`regex::Regex::captures_len`] does).
    pub(crate) fn check_groups(&self, captures_len: usize) -> Result<(), String> {
        match self.max_group() {
            Some(group) if group >= captures_len => Err(format!(
                "refers to group \\{group} but match_pattern has {} capture group{}",
                captures_len.saturating_sub(1),
                if captures_len == 2 { "" } else { "s" }
            )),
            _ => Ok(()),
        }
    }

    fn expand(&self, captures: &regex::Captures<'_>, variables: &RewriteVariables) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(group) => {
                    out.push_str(captures.get(*group).map_or("", |m| m.as_str()));
                }
                Piece::Var(variable) => out.push_str(variables.value(*variable)),
            }
        }
        out
    }
}

/// The outcome of applying one list of a rule set to a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewritten {
    /// The rewritten number, or the input unchanged when no rule matched.
    pub number: String,
    /// The rule that matched, `None` when none did.
    pub rule_id: Option<i64>,
}

impl Rewritten {
    /// Whether a rule matched (the number may still be unchanged if the rule rewrote it to itself).
    pub fn matched(&self) -> bool {
        self.rule_id.is_some()
    }
}

/// A stored rule the engine could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRule {
    /// The rule's id.
    pub id: i64,
    /// Why it was skipped (e.g. the pattern no longer compiles).
    pub reason: String,
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct CompiledRule {
    id: i64,
    pattern: regex::Regex,
    replacement: Replacement,
}

impl CompiledRule {
    fn new(rule: &RewriteRule) -> Result<Self, String> {
        let pattern =
            compile_pattern("match_pattern", &rule.match_pattern).map_err(|e| e.to_string())?;
        let replacement = Replacement::parse(&rule.replace_pattern);
        replacement
            .check_groups(pattern.captures_len())
            .map_err(|reason| format!("replace_pattern {reason}"))?;
        Ok(CompiledRule {
            id: rule.id,
            pattern,
            replacement,
        })
    }
}

/// The four rule lists of a set, each compiled once and ordered by priority then id.
///
/// # Semantics (Kamailio `dialplan` module, which ngcp loads the rules into)
/// - A set holds four lists: caller-in, callee-in, caller-out, callee-out
///   ([`RewriteDirection`] × [`RewriteField`]). Only the list asked for is consulted.
/// - Within a list the enabled rules are tried in ascending `priority` (lower first; equal
///   priorities in ascending `id`). Disabled rules are skipped.
/// - **The first matching rule wins and nothing else runs**: its replacement becomes the result
///   and no later rule sees it (no chaining). Kamailio's `dp_translate` stops at the first match
///   ("The first matching rule will be processed", dialplan module README; `dp_translate_helper`
///   jumps to the replacement on the first rule whose expression matches, the rules having been
///   loaded `ORDER BY pr`), and ngcp-panel's own `apply_rewrite` leaves its loop after the first
///   substitution ("we only process one match").
/// - A rule matches when its `match_pattern` (a `regex`-crate expression) matches anywhere in the
///   number; anchor it with `^…$` to match the whole number.
/// - **The result is the expanded replacement, and only that** — the parts of the number outside
///   the match are not kept. This is Kamailio's `rule_translate`, which builds the output from the
///   replacement expression alone. For the usual anchored `^…$` rules it is the same as an
///   in-place substitution. (ngcp-panel's own `applyrewrites` substitutes in place with Perl
///   `s///g`; the two differ only for unanchored patterns, and voxide follows the proxy so that
///   the dry run and the call agree.)
/// - When no rule matches, the number is returned unchanged and [`Rewritten::rule_id`] is `None`.
///
/// # Replacement syntax
/// | written | becomes |
/// | --- | --- |
/// | `\1` … `\9` | the text of that capture group (one digit: `\10` is group 1 then `0`) |
/// | `\0` | the whole match |
/// | `\\` | one backslash |
/// | `\` followed by anything else, or last | a literal backslash |
/// | `${caller_cc}` `${caller_ac}` `${caller_sn}` `${callee_cc}` `${callee_ac}` `${callee_sn}` | the value from [`RewriteVariables`]; an **unset variable expands to the empty string** (as in ngcp-panel, which substitutes `''` for a preference that is not set) |
/// | `$` anywhere else (`$x`, `${unknown}`, an unterminated `${`) | itself, literally |
///
/// A group that exists in the pattern but did not take part in the match expands to the empty
/// string. A replacement that refers to a group the pattern does not have (`\2` with one group)
/// makes the rule invalid: Kamailio refuses to load such a rule, the engine skips it and reports
/// it in [`CompiledRuleSet::skipped`], and the repository refuses to store it.
///
/// Neither building nor applying panics: a stored pattern that no longer compiles is skipped
/// and reported by id.
#[derive(Debug, Clone, Default)]
pub struct CompiledRuleSet {
    /// Indexed by [`list_index`].
    lists: [Vec<CompiledRule>; 4],
    skipped: Vec<SkippedRule>,
}

fn list_index(direction: RewriteDirection, field: RewriteField) -> usize {
    match (direction, field) {
        (RewriteDirection::In, RewriteField::Caller) => 0,
        (RewriteDirection::In, RewriteField::Callee) => 1,
        (RewriteDirection::Out, RewriteField::Caller) => 2,
        (RewriteDirection::Out, RewriteField::Callee) => 3,
    }
}

impl CompiledRuleSet {
    /// Compiles the enabled rules of one set (all four lists at once; pass the rules of a single
    /// set — `set_id` is not looked at). A rule whose pattern does not compile, or whose
    /// replacement refers to a group the pattern lacks, is left out and listed in
    /// [`skipped`](Self::skipped); disabled rules are left out silently.
    pub fn new(rules: &[RewriteRule]) -> Self {
        let mut enabled: Vec<&RewriteRule> = rules.iter().filter(|rule| rule.enabled).collect();
        enabled.sort_by_key(|rule| (rule.priority, rule.id));
        let mut set = CompiledRuleSet::default();
        for rule in enabled {
            match CompiledRule::new(rule) {
                Ok(compiled) => set.lists[list_index(rule.direction, rule.field)].push(compiled),
                Err(reason) => set.skipped.push(SkippedRule {
                    id: rule.id,
                    reason,
                }),
            }
        }
        set
    }

    /// Rewrites `number` with the list `direction` × `field`: the first rule (by priority, then
    /// id) whose pattern matches gives the result; no rule matching leaves the number as is.
    pub fn apply(
        &self,
        direction: RewriteDirection,
        field: RewriteField,
        number: &str,
        variables: &RewriteVariables,
    ) -> Rewritten {
        for rule in &self.lists[list_index(direction, field)] {
            if let Some(captures) = rule.pattern.captures(number) {
                return Rewritten {
                    number: rule.replacement.expand(&captures, variables),
                    rule_id: Some(rule.id),
                };
            }
        }
        Rewritten {
            number: number.to_owned(),
            rule_id: None,
        }
    }

    /// The ids of one list's usable rules in the order they are tried.
    pub fn rule_ids(&self, direction: RewriteDirection, field: RewriteField) -> Vec<i64> {
        self.lists[list_index(direction, field)]
            .iter()
            .map(|rule| rule.id)
            .collect()
    }

    /// The number of usable rules over all four lists.
    pub fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// True when no list has a usable rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The enabled rules that could not be compiled, in priority order.
    pub fn skipped(&self) -> &[SkippedRule] {
        &self.skipped
    }
}

#[cfg(test)]
mod tests;
