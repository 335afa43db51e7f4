//! Data-driven policy decisions: every case in `fixtures/decisions.json` goes through `check()`.
//! Adding a case is adding JSON; a failure names the case and shows the decision.

mod common;

use relais_policy::{Action, Actor, Decision, Directory, RoomFacts, Rule, UserId, decide};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    now_ms: u64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    actor: UserId,
    action: Action,
    #[serde(default)]
    room: Option<RoomFacts>,
    #[serde(default)]
    now_ms: Option<u64>,
    /// `"allow"` or a rule code such as `"M3"`.
    expect: String,
}

/// Decides one case and compares with its expectation; `Err` describes the mismatch.
fn check(case: &Case, directory: &Directory, default_now: u64) -> Result<(), String> {
    let decision = decide(
        &case.action,
        &Actor::new(case.actor.clone()),
        case.room.as_ref(),
        directory,
        case.now_ms.unwrap_or(default_now),
    );
    let expected = if case.expect == "allow" {
        None
    } else {
        let rule: Rule = serde_json::from_value(serde_json::Value::String(case.expect.clone()))
            .map_err(|e| format!("{}: bad expectation `{}`: {e}", case.name, case.expect))?;
        Some(rule)
    };
    let ok = match (&decision, expected) {
        (Decision::Allow, None) => true,
        (Decision::Deny { rule, reason }, Some(want)) => *rule == want && !reason.is_empty(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{}: expected {}, got {decision:?}", case.name, case.expect))
    }
}

#[test]
fn every_fixture_case_decides_as_expected() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/decisions.json"))
        .expect("decisions.json parses");
    let directory = common::directory();
    assert!(!fixture.cases.is_empty());
    let failures: Vec<String> = fixture
        .cases
        .iter()
        .filter_map(|case| check(case, &directory, fixture.now_ms).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        fixture.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn fixture_case_names_are_unique() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/decisions.json"))
        .expect("decisions.json parses");
    let mut names = std::collections::BTreeSet::new();
    for case in &fixture.cases {
        assert!(names.insert(case.name.as_str()), "duplicate case name: {}", case.name);
    }
}
