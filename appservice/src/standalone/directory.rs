//! The directory, followed from the outside: read from the unit rooms' state at start-up, then
//! kept current from the events the homeserver pushes to the service.
//!
//! The homeserver writes the directory (admin API, bot commands, reminders); this service only
//! reads it. A transaction may carry events older than the state read at start-up (the
//! homeserver's queue held them while the service was down), so each record remembers the
//! timestamp of the event it came from and an older event never replaces it.

use std::collections::HashMap;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::homeserver::{Homeserver, HomeserverError};
use crate::{PolicyService, records::names};

/// The directory as this service follows it.
pub struct Follower {
    service: PolicyService,
    /// The unit of each unit room, by room ID.
    units: RwLock<HashMap<String, String>>,
    /// The timestamp of the event each record comes from, by (event type, state key).
    applied: Mutex<HashMap<(String, String), u64>>,
}

impl Follower {
    /// A follower of `service`'s directory, empty until [`Follower::load`].
    pub fn new(service: PolicyService) -> Self {
        Self { service, units: RwLock::new(HashMap::new()), applied: Mutex::new(HashMap::new()) }
    }

    /// The room of `unit`, once loaded.
    pub fn room_of(&self, unit: &str) -> Option<String> {
        let units = self.units.read();
        units.iter().find(|(_, u)| u.as_str() == unit).map(|(room, _)| room.clone())
    }

    /// The index decisions are taken on.
    pub fn service(&self) -> &PolicyService {
        &self.service
    }

    /// Finds every unit's room, creating those that do not exist yet (parents first, each a
    /// space that lists its sub-units' rooms), and reads their records. Returns the number of
    /// records applied.
    pub async fn load(
        &self,
        homeserver: &Homeserver,
        server_name: &str,
    ) -> Result<usize, HomeserverError> {
        let mut events = Vec::new();
        let mut rooms: HashMap<String, String> = HashMap::new();
        for unit in self.units_parents_first() {
            let alias = format!("#relais-unit-{}:{server_name}", unit.id);
            let room = match homeserver.resolve_alias(&alias).await? {
                Some(room) => room,
                None => {
                    let parent = unit.parent.as_ref().and_then(|p| rooms.get(p)).cloned();
                    self.create_unit_room(homeserver, unit, parent.as_deref(), server_name).await?
                }
            };
            rooms.insert(unit.id.clone(), room.clone());
            for mut event in homeserver.joined_room_state(&room).await? {
                // The client format of `/state` may leave `room_id` out.
                event["room_id"] = room.clone().into();
                events.push(event);
            }
            self.units.write().insert(room, unit.id.clone());
        }
        // Oldest first, as they were written: the latest record of a user wins.
        events.sort_by_key(timestamp);
        Ok(events.iter().filter(|event| self.apply(event)).count())
    }

    /// The configured units, each after its parent.
    fn units_parents_first(&self) -> Vec<&crate::UnitConfig> {
        let units = &self.service.config().units;
        let mut ordered: Vec<&crate::UnitConfig> = Vec::new();
        while ordered.len() < units.len() {
            let before = ordered.len();
            for unit in units {
                let placed = |id: &str| ordered.iter().any(|u| u.id == id);
                if !placed(&unit.id) && unit.parent.as_deref().is_none_or(placed) {
                    ordered.push(unit);
                }
            }
            if ordered.len() == before {
                // The service checked the tree when it started; this only guards a loop.
                break;
            }
        }
        ordered
    }

    /// Creates a unit's room as the bot: a private space with the unit's alias, listed in its
    /// parent's room. The homeserver embedding the service makes the same rooms.
    async fn create_unit_room(
        &self,
        homeserver: &Homeserver,
        unit: &crate::UnitConfig,
        parent: Option<&str>,
        server_name: &str,
    ) -> Result<String, HomeserverError> {
        let name = if unit.name.is_empty() { unit.id.as_str() } else { unit.name.as_str() };
        let request = serde_json::json!({
            "name": name,
            "topic": format!("Directory and audit log of the organisation unit {}", unit.id),
            "room_alias_name": format!("relais-unit-{}", unit.id),
            "preset": "private_chat",
            "visibility": "private",
            "creation_content": { "type": "m.space" },
            "initial_state": [{
                "type": names::ORG_UNIT, "state_key": unit.id, "content": { "id": unit.id },
            }],
        });
        let room = homeserver.create_room(&request).await?;
        if let Some(parent) = parent {
            let content = serde_json::json!({ "via": [server_name] });
            homeserver.put_state(parent, "m.space.child", &room, &content).await?;
        }
        tracing::info!(unit = unit.id, %room, "organisation unit room created");
        Ok(room)
    }

    /// Applies `event` if it is a directory record of a unit room, newer than the one held.
    /// Returns whether it changed the directory.
    pub fn apply(&self, event: &Value) -> bool {
        let field = |name: &str| event.get(name).and_then(Value::as_str);
        let (Some(kind), Some(key), Some(room)) =
            (field("type"), field("state_key"), field("room_id"))
        else {
            return false;
        };
        if ![names::MEMBER, names::DELEGATION, names::INVITATION].contains(&kind) {
            return false;
        }
        let Some(unit) = self.units.read().get(room).cloned() else { return false };
        let ts = timestamp(event);
        let mut applied = self.applied.lock();
        let slot = (kind.to_owned(), key.to_owned());
        if applied.get(&slot).is_some_and(|held| *held > ts) {
            return false;
        }
        let content = event.get("content").cloned().unwrap_or_default();
        match self.service.apply_directory_event(kind, key, content, Some(&unit)) {
            Ok(changed) => {
                applied.insert(slot, ts);
                changed
            }
            Err(error) => {
                let event_id = field("event_id").unwrap_or_default();
                tracing::warn!(event_id, %error, "directory record skipped");
                false
            }
        }
    }
}

fn timestamp(event: &Value) -> u64 {
    event.get("origin_server_ts").and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{PolicyConfig, UnitConfig};

    fn follower() -> Follower {
        let config = PolicyConfig::enabled_with(vec![UnitConfig::new("state", None)]);
        let follower = Follower::new(PolicyService::new(config, "x").expect("valid"));
        follower.units.write().insert("!unit:x".into(), "state".into());
        follower
    }

    fn record(tier: &str, ts: u64, room: &str) -> Value {
        json!({
            "type": "fr.relais.member", "state_key": "bob:x", "room_id": room,
            "origin_server_ts": ts, "event_id": format!("$e{ts}"),
            "content": { "tier": tier, "unit": "state", "status": "active" },
        })
    }

    fn tier(follower: &Follower) -> Option<relais_policy::Tier> {
        follower.service.directory().user(&"@bob:x".into()).map(|r| r.tier)
    }

    #[test]
    fn newer_records_win_and_older_ones_are_ignored() {
        let follower = follower();
        assert!(follower.apply(&record("public", 20, "!unit:x")));
        assert_eq!(tier(&follower), Some(relais_policy::Tier::Public));
        assert!(!follower.apply(&record("agent", 10, "!unit:x")), "an older record is ignored");
        assert_eq!(tier(&follower), Some(relais_policy::Tier::Public));
        assert!(follower.apply(&record("agent", 30, "!unit:x")));
        assert_eq!(tier(&follower), Some(relais_policy::Tier::Agent));
    }

    #[test]
    fn records_outside_unit_rooms_are_ignored() {
        let follower = follower();
        assert!(!follower.apply(&record("agent", 10, "!elsewhere:x")));
        assert_eq!(tier(&follower), None);
    }
}
