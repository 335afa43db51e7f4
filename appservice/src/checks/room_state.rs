//! Room facts from a room's state events in the client format (as `GET
//! /_synapse/admin/v1/rooms/{roomId}/state` gives them), for a policy service that reads rooms
//! through the homeserver's API rather than its storage.

use std::collections::HashMap;

use relais_policy::{AccessClass, Directory, RoomFacts, UnitId, WorkspaceFacts, WorkspaceStatus};
use ruma::RoomVersionId;
use serde_json::Value;

use crate::records::names;

/// Members looked at for `is_direct`: a direct conversation has two (a third is refused by M4).
const DIRECT_MEMBERS_CHECKED: usize = 3;

/// The membership a member event's content gives.
fn membership(content: &Value) -> Option<&str> {
    content.get("membership").and_then(Value::as_str)
}

/// The current state of a room, by type and state key.
#[derive(Clone, Debug, Default)]
pub struct RoomState {
    events: HashMap<(String, String), Value>,
}

impl RoomState {
    /// The state made of `events` (each with `type`, `state_key`, `sender` and `content`); events
    /// without a type or a state key are ignored.
    pub fn from_events(events: impl IntoIterator<Item = Value>) -> Self {
        let events = events
            .into_iter()
            .filter_map(|event| {
                let kind = event.get("type")?.as_str()?.to_owned();
                let key = event.get("state_key")?.as_str()?.to_owned();
                Some(((kind, key), event))
            })
            .collect();
        Self { events }
    }

    /// The content of the state event `(kind, state_key)`.
    pub fn content(&self, kind: &str, state_key: &str) -> Option<&Value> {
        self.events.get(&(kind.to_owned(), state_key.to_owned())).and_then(|e| e.get("content"))
    }

    /// The spaces this room names as parents (`m.space.parent` state keys).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.events.keys().filter(|(kind, _)| kind == "m.space.parent").map(|(_, key)| key.as_str())
    }

    /// Who created the room (the sender of `m.room.create`).
    pub fn creator(&self) -> Option<&str> {
        self.events
            .get(&("m.room.create".to_owned(), String::new()))
            .and_then(|e| e.get("sender"))
            .and_then(Value::as_str)
    }

    /// Whether the room's version gives its creators unlimited power (room version 12), and so
    /// who they are.
    fn privileged_creators(&self) -> Vec<&str> {
        let Some(create) = self.content("m.room.create", "") else { return Vec::new() };
        let version = create.get("room_version").and_then(Value::as_str).unwrap_or("1");
        let privileged = RoomVersionId::try_from(version)
            .ok()
            .and_then(|v| v.rules())
            .is_some_and(|rules| rules.authorization.explicitly_privilege_room_creators);
        if !privileged {
            return Vec::new();
        }
        let additional = create.get("additional_creators").and_then(Value::as_array);
        self.creator()
            .into_iter()
            .chain(additional.into_iter().flatten().filter_map(Value::as_str))
            .collect()
    }

    /// The power level of `user` (`i64::MAX` for a privileged creator).
    pub fn power_of(&self, user: &str) -> i64 {
        if self.privileged_creators().contains(&user) {
            return i64::MAX;
        }
        match self.content("m.room.power_levels", "") {
            Some(levels) => levels
                .pointer(&format!("/users/{}", user.replace('~', "~0").replace('/', "~1")))
                .and_then(Value::as_i64)
                .unwrap_or_else(|| self.users_default()),
            // Without power levels the creator holds 100 and everyone else 0.
            None => {
                if self.creator() == Some(user) {
                    100
                } else {
                    0
                }
            }
        }
    }

    fn users_default(&self) -> i64 {
        self.content("m.room.power_levels", "")
            .and_then(|c| c.get("users_default"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// The room's own access class, if it has one.
    fn class(&self) -> Option<AccessClass> {
        self.content(names::ACCESS, "").map(|c| AccessClass::from_event_content(Some(c)))
    }

    /// The facts of this room as a workspace, if it is one (it has a `fr.relais.workspace`
    /// event naming its unit).
    pub fn workspace_facts(&self, actor: &str) -> Option<WorkspaceFacts> {
        let workspace = self.content(names::WORKSPACE, "")?;
        let unit = workspace.get("unit").and_then(Value::as_str)?;
        let status = workspace
            .get("status")
            .and_then(|s| serde_json::from_value::<WorkspaceStatus>(s.clone()).ok())
            .unwrap_or_default();
        Some(WorkspaceFacts {
            class: self.class(),
            unit: UnitId::from(unit),
            actor_power: self.power_of(actor),
            status,
        })
    }

    /// The facts of this room for an action of `actor`, inside `workspace` (the facts of its
    /// parent workspace, if any); the room's unit is its workspace's, else its creator's.
    pub fn facts(
        &self,
        actor: &str,
        workspace: Option<WorkspaceFacts>,
        directory: &Directory,
    ) -> RoomFacts {
        let members: Vec<(&str, &Value)> = self
            .events
            .iter()
            .filter(|((kind, _), _)| kind == "m.room.member")
            .filter_map(|((_, user), event)| Some((user.as_str(), event.get("content")?)))
            .collect();
        let current: Vec<_> = members
            .iter()
            .filter(|(_, c)| matches!(membership(c), Some("join" | "invite")))
            .collect();
        let is_direct = current.len() <= DIRECT_MEMBERS_CHECKED
            && current
                .iter()
                .any(|(_, c)| c.get("is_direct").and_then(Value::as_bool) == Some(true));
        let actor_membership =
            members.iter().find(|(user, _)| *user == actor).and_then(|(_, c)| membership(c));
        let own_workspace = self.content(names::WORKSPACE, "");
        let unit = match own_workspace {
            Some(ws) => ws.get("unit").and_then(Value::as_str).map(UnitId::from),
            None => self
                .creator()
                .and_then(|creator| directory.user(&creator.into()))
                .map(|record| record.unit.clone()),
        };
        RoomFacts {
            class: self.class(),
            is_direct,
            is_workspace: own_workspace.is_some(),
            member_count: u32::try_from(current.len()).unwrap_or(u32::MAX),
            actor_joined: actor_membership == Some("join"),
            actor_invited: actor_membership == Some("invite"),
            actor_power: self.power_of(actor),
            invite_power: self
                .content("m.room.power_levels", "")
                .and_then(|c| c.get("invite"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            users_default_power: self.users_default(),
            workspace,
            unit,
        }
    }
}

#[cfg(test)]
mod tests {
    use relais_policy::DirectoryParts;
    use serde_json::json;

    use super::*;

    fn event(kind: &str, key: &str, sender: &str, content: Value) -> Value {
        json!({ "type": kind, "state_key": key, "sender": sender, "content": content })
    }

    fn directory() -> Directory {
        let parts = DirectoryParts::new("x", "@bot:x");
        Directory::from_parts(parts).expect("empty directory")
    }

    #[test]
    fn power_follows_the_room_version_and_the_levels() {
        let v12 = RoomState::from_events([
            event(
                "m.room.create",
                "",
                "@alice:x",
                json!({ "room_version": "12", "additional_creators": ["@bot:x"] }),
            ),
            event("m.room.power_levels", "", "@alice:x", json!({ "users": { "@bob:x": 50 } })),
        ]);
        assert_eq!(v12.power_of("@alice:x"), i64::MAX);
        assert_eq!(v12.power_of("@bot:x"), i64::MAX);
        assert_eq!(v12.power_of("@bob:x"), 50);
        assert_eq!(v12.power_of("@carol:x"), 0);
        let v10 = RoomState::from_events([event(
            "m.room.create",
            "",
            "@alice:x",
            json!({ "room_version": "10" }),
        )]);
        assert_eq!(v10.power_of("@alice:x"), 100, "no power levels: the creator holds 100");
        assert_eq!(v10.power_of("@bob:x"), 0);
    }

    #[test]
    fn facts_read_class_members_and_direct_conversations() {
        let state = RoomState::from_events([
            event("m.room.create", "", "@alice:x", json!({ "room_version": "11" })),
            event("fr.relais.access", "", "@alice:x", json!({ "class": "public" })),
            event("m.room.member", "@alice:x", "@alice:x", json!({ "membership": "join" })),
            event(
                "m.room.member",
                "@bob:x",
                "@alice:x",
                json!({ "membership": "invite", "is_direct": true }),
            ),
            event("m.room.member", "@carol:x", "@carol:x", json!({ "membership": "leave" })),
            event("m.room.power_levels", "", "@alice:x", json!({ "invite": 50, "users": {} })),
        ]);
        let facts = state.facts("@bob:x", None, &directory());
        assert_eq!(facts.class, Some(AccessClass::Public));
        assert!(facts.is_direct && !facts.is_workspace);
        assert_eq!(facts.member_count, 2);
        assert!(facts.actor_invited && !facts.actor_joined);
        assert_eq!(facts.invite_power, 50);
        assert!(state.workspace_facts("@bob:x").is_none());
    }
}
