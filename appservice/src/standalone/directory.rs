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

/// Why the directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The homeserver failed.
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    /// A unit's room does not exist yet: the homeserver creates them at its first start with
    /// the same `[policy]` section.
    #[error(
        "the room of unit {unit} ({alias}) does not exist: is the homeserver's policy enabled \
         with the same units?"
    )]
    MissingUnitRoom {
        /// The unit.
        unit: String,
        /// The alias looked for.
        alias: String,
    },
}

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

    /// The index decisions are taken on.
    pub fn service(&self) -> &PolicyService {
        &self.service
    }

    /// Finds every unit's room and reads its records. Returns the number of records applied.
    pub async fn load(
        &self,
        homeserver: &Homeserver,
        server_name: &str,
    ) -> Result<usize, LoadError> {
        let mut events = Vec::new();
        for unit in &self.service.config().units {
            let alias = format!("#relais-unit-{}:{server_name}", unit.id);
            let Some(room) = homeserver.resolve_alias(&alias).await? else {
                return Err(LoadError::MissingUnitRoom { unit: unit.id.clone(), alias });
            };
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
        let config = PolicyConfig {
            enabled: true,
            units: vec![UnitConfig {
                id: "state".into(),
                parent: None,
                name: String::new(),
                requires_workspace_approval: false,
            }],
            ..PolicyConfig::default()
        };
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
