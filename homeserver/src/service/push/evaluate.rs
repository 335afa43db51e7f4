//! Push rule evaluation for every recipient of an event, with ruma's evaluator.
//!
//! The event is flattened once (ruma's `Ruleset::get_actions` flattens it again for every call),
//! one room context is reused for all recipients, and members whose rules are exactly the
//! server-default ones share results: for them the outcome depends only on whether the event
//! targets them (`state_key`) and whether it mentions them (`m.mentions.user_ids`), so a room of a
//! thousand such members costs at most four evaluations.

use std::collections::HashMap;

use futures_util::FutureExt as _;
use ruma::{
    OwnedUserId, UserId,
    push::{
        Action, FlattenedJson, FlattenedJsonValue, PushConditionRoomCtx, Ruleset, ScalarJsonValue,
    },
    serde::Raw,
};

use super::rules::UserRules;

/// An event prepared for evaluation.
#[derive(Debug)]
pub struct PreparedEvent {
    flat: FlattenedJson,
    sender: OwnedUserId,
    state_key: Option<String>,
    mentioned: Vec<String>,
}

impl PreparedEvent {
    /// Flattens an event's JSON (the PDU or its client form).
    pub fn new<T>(json: &Raw<T>, sender: &UserId) -> Self {
        let flat = FlattenedJson::from_raw(json);
        let state_key = flat.get_str("state_key").map(str::to_owned);
        let mentioned = match flat.get(r"content.m\.mentions.user_ids") {
            Some(FlattenedJsonValue::Array(ids)) => ids
                .iter()
                .filter_map(|id| match id {
                    ScalarJsonValue::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self { flat, sender: sender.to_owned(), state_key, mentioned }
    }

    /// What decides a default-rules member's result besides the room.
    fn default_class(&self, user: &UserId) -> (bool, bool) {
        (
            self.state_key.as_deref() == Some(user.as_str()),
            self.mentioned.iter().any(|id| id == user.as_str()),
        )
    }
}

/// The actions of the first rule of `ruleset` matching the event, or none.
pub fn actions(
    ruleset: &Ruleset,
    event: &PreparedEvent,
    ctx: &PushConditionRoomCtx,
) -> Vec<Action> {
    if event.sender == ctx.user_id {
        return Vec::new();
    }
    for rule in ruleset {
        // Conditions only await for MSC4306 thread subscriptions, which are not enabled: the
        // future is always ready.
        if rule.applies(&event.flat, ctx).now_or_never().unwrap_or(false) {
            return rule.actions().to_vec();
        }
    }
    Vec::new()
}

/// Whether actions ask for a notification.
pub fn notifies(actions: &[Action]) -> bool {
    actions.iter().any(Action::should_notify)
}

/// Whether actions ask for a highlight.
pub fn highlights(actions: &[Action]) -> bool {
    actions.iter().any(Action::is_highlight)
}

/// Evaluates `event` for each recipient with its rules, in `ctx` (whose `user_id` and
/// `user_display_name` are set per recipient). `display_name` is asked only for rulesets that
/// need it. Returns the recipients whose actions notify, with those actions.
pub fn evaluate_all(
    event: &PreparedEvent,
    mut ctx: PushConditionRoomCtx,
    recipients: &[(OwnedUserId, std::sync::Arc<UserRules>)],
    mut display_name: impl FnMut(&UserId) -> String,
) -> Vec<(OwnedUserId, Vec<Action>)> {
    let mut shared: HashMap<(bool, bool), Vec<Action>> = HashMap::new();
    let mut out = Vec::new();
    for (user, rules) in recipients {
        if *user == event.sender {
            continue;
        }
        ctx.user_id = user.clone();
        let result = if rules.is_default {
            let class = event.default_class(user);
            if let Some(actions) = shared.get(&class) {
                actions.clone()
            } else {
                ctx.user_display_name = String::new();
                let actions = actions(&rules.ruleset, event, &ctx);
                shared.insert(class, actions.clone());
                actions
            }
        } else {
            ctx.user_display_name =
                if rules.needs_display_name { display_name(user) } else { String::new() };
            actions(&rules.ruleset, event, &ctx)
        };
        if notifies(&result) {
            out.push((user.clone(), result));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ruma::{
        owned_room_id, owned_user_id,
        push::{NewPushRule, NewSimplePushRule},
    };
    use serde_json::{Value, json};

    use super::*;

    fn prepared(value: Value) -> PreparedEvent {
        let raw: Raw<Value> = Raw::new(&value).unwrap();
        let sender = OwnedUserId::try_from(value["sender"].as_str().unwrap()).unwrap();
        PreparedEvent::new(&raw, &sender)
    }

    fn ctx(members: u32) -> PushConditionRoomCtx {
        PushConditionRoomCtx::new(
            owned_room_id!("!room:example.org"),
            members.into(),
            owned_user_id!("@nobody:example.org"),
            String::new(),
        )
    }

    fn message(body: &str, mentions: &[&str]) -> PreparedEvent {
        prepared(json!({
            "type": "m.room.message",
            "sender": "@bob:example.org",
            "room_id": "!room:example.org",
            "content": { "msgtype": "m.text", "body": body, "m.mentions": { "user_ids": mentions } },
        }))
    }

    fn members(n: usize) -> Vec<(OwnedUserId, Arc<UserRules>)> {
        (0..n)
            .map(|i| {
                let user = OwnedUserId::try_from(format!("@user{i}:example.org")).unwrap();
                let rules = Arc::new(UserRules::server_default(&user));
                (user, rules)
            })
            .collect()
    }

    #[test]
    fn a_mention_highlights_only_the_mentioned_member() {
        let event = message("hello user3", &["@user3:example.org"]);
        let results = evaluate_all(&event, ctx(10), &members(10), |_| String::new());
        assert_eq!(results.len(), 10, "every member is notified of a message");
        for (user, actions) in &results {
            assert_eq!(highlights(actions), user.as_str() == "@user3:example.org", "{user}");
        }
    }

    #[test]
    fn shared_results_equal_full_evaluation() {
        let events = [
            message("hi", &[]),
            message("hi", &["@user1:example.org", "@user4:example.org"]),
            prepared(json!({
                "type": "m.room.member", "sender": "@bob:example.org", "state_key": "@user2:example.org",
                "content": { "membership": "invite" },
            })),
            prepared(json!({
                "type": "m.room.message", "sender": "@bob:example.org",
                "content": { "msgtype": "m.notice", "body": "bot" },
            })),
        ];
        let members = members(6);
        for event in &events {
            for count in [2, 6] {
                let shared = evaluate_all(event, ctx(count), &members, |_| String::new());
                for (user, rules) in &members {
                    let mut full_ctx = ctx(count);
                    full_ctx.user_id = user.clone();
                    let expected = actions(&rules.ruleset, event, &full_ctx);
                    let got = shared.iter().find(|(u, _)| u == user).map(|(_, a)| a.clone());
                    assert_eq!(
                        serde_json::to_value(got.unwrap_or_default()).unwrap(),
                        serde_json::to_value(if notifies(&expected) { expected } else { vec![] })
                            .unwrap(),
                    );
                }
            }
        }
    }

    #[test]
    fn the_sender_is_never_notified() {
        let event = message("hi", &["@bob:example.org"]);
        let bob = owned_user_id!("@bob:example.org");
        let recipients = vec![(bob.clone(), Arc::new(UserRules::server_default(&bob)))];
        assert!(evaluate_all(&event, ctx(2), &recipients, |_| String::new()).is_empty());
    }

    #[test]
    fn a_room_rule_overrides_the_defaults() {
        let user = owned_user_id!("@user0:example.org");
        let mut ruleset = Ruleset::server_default(&user);
        ruleset
            .insert(
                NewPushRule::Room(NewSimplePushRule::new(
                    owned_room_id!("!room:example.org"),
                    vec![],
                )),
                None,
                None,
            )
            .unwrap();
        let recipients = vec![(user.clone(), Arc::new(UserRules::new(&user, ruleset)))];
        assert!(
            evaluate_all(&message("hi", &[]), ctx(5), &recipients, |_| String::new()).is_empty()
        );
        // A mention is an override rule: it still notifies.
        let mention = message("hi", &["@user0:example.org"]);
        assert_eq!(evaluate_all(&mention, ctx(5), &recipients, |_| String::new()).len(), 1);
    }
}
