//! Rooms and memberships read through the homeserver's admin API, for one decision: each room's
//! state is fetched once per decision and always current, so a power-level change is seen by the
//! very next check.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use relais_policy::{RoomFacts, WorkspaceFacts};
use ruma::{RoomId, UserId};
use serde_json::Value;
use tokio::runtime::Handle;

use super::homeserver::{Homeserver, HomeserverError};
use crate::{
    PolicyService,
    checks::{Lookup, LookupError, room_state::RoomState},
};

/// Rooms looked at to find whether a user of another server shares one with a local user.
const REMOTE_MEMBER_ROOMS_CHECKED: usize = 50;

/// The lookups of one decision. Blocking: run it off the async workers (`spawn_blocking`).
pub struct HttpLookup<'a> {
    homeserver: &'a Homeserver,
    service: &'a PolicyService,
    server_name: &'a str,
    runtime: Handle,
    rooms: Mutex<HashMap<String, Option<RoomState>>>,
}

impl<'a> HttpLookup<'a> {
    /// Lookups through `homeserver`, on the runtime `runtime`.
    pub fn new(
        homeserver: &'a Homeserver,
        service: &'a PolicyService,
        server_name: &'a str,
        runtime: Handle,
    ) -> Self {
        Self { homeserver, service, server_name, runtime, rooms: Mutex::new(HashMap::new()) }
    }

    fn wait<T>(
        &self,
        call: impl Future<Output = Result<T, HomeserverError>>,
    ) -> Result<T, LookupError> {
        self.runtime.block_on(call).map_err(LookupError::from_display)
    }

    /// The state of `room`, fetched once.
    fn state(&self, room: &RoomId) -> Result<Option<RoomState>, LookupError> {
        if let Some(known) = self.rooms.lock().get(room.as_str()) {
            return Ok(known.clone());
        }
        let state =
            self.wait(self.homeserver.room_state(room.as_str()))?.map(RoomState::from_events);
        self.rooms.lock().insert(room.as_str().to_owned(), state.clone());
        Ok(state)
    }

    fn is_local(&self, user: &UserId) -> bool {
        user.server_name().as_str() == self.server_name
    }
}

impl Lookup for HttpLookup<'_> {
    fn server_name(&self) -> &str {
        self.server_name
    }

    fn is_exempt(&self, user: &UserId) -> Result<bool, LookupError> {
        if user.as_str() == self.service.bot().as_str()
            || self.service.directory().is_server_admin(&user.as_str().into())
        {
            return Ok(true);
        }
        if !self.is_local(user) {
            return Ok(false);
        }
        self.wait(self.homeserver.is_admin(user.as_str()))
    }

    fn room_facts(&self, room: &RoomId, actor: &UserId) -> Result<Option<RoomFacts>, LookupError> {
        let Some(state) = self.state(room)? else { return Ok(None) };
        let mut workspace = None;
        for parent in state.parents() {
            let Ok(parent) = RoomId::parse(parent) else { continue };
            if let Some(facts) = self.workspace_facts(&parent, actor)? {
                workspace = Some(facts);
                break;
            }
        }
        Ok(Some(state.facts(actor.as_str(), workspace, &self.service.directory())))
    }

    fn workspace_facts(
        &self,
        space: &RoomId,
        actor: &UserId,
    ) -> Result<Option<WorkspaceFacts>, LookupError> {
        Ok(self.state(space)?.and_then(|state| state.workspace_facts(actor.as_str())))
    }

    fn state_content(
        &self,
        room: &RoomId,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Value>, LookupError> {
        Ok(self.state(room)?.and_then(|state| state.content(kind, state_key).cloned()))
    }

    fn share_a_room(&self, a: &UserId, b: &UserId) -> Result<bool, LookupError> {
        if !self.is_local(a) {
            return Ok(false);
        }
        let mine: HashSet<String> =
            self.wait(self.homeserver.joined_rooms(a.as_str()))?.into_iter().collect();
        if self.is_local(b) {
            let theirs = self.wait(self.homeserver.joined_rooms(b.as_str()))?;
            return Ok(theirs.iter().any(|room| mine.contains(room)));
        }
        // A user of another server has no joined-rooms list here: look for them among the
        // members of the rooms `a` is in, up to a bound that keeps a check cheap.
        for room in mine.iter().take(REMOTE_MEMBER_ROOMS_CHECKED) {
            let Ok(room) = RoomId::parse(room) else { continue };
            let member = self.state_content(&room, "m.room.member", b.as_str())?;
            let membership = member.as_ref().and_then(|c| c["membership"].as_str());
            if matches!(membership, Some("join" | "invite")) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
