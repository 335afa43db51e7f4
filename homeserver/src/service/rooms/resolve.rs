//! State resolution between forks of a room's DAG (room versions 2 and later, v2.1 from room
//! version 12), with ruma-state-res. Forks appear once several servers send into a room at the
//! same time: an event whose `prev_events` are several, or a room with several forward
//! extremities, has its state resolved from the states of its parents.

use std::collections::{HashMap, HashSet};

use ruma::{
    OwnedEventId,
    events::StateEventType,
    room_version_rules::RoomVersionRules,
    state_res::{self, StateMap as ResStateMap, utils::event_id_set::EventIdSet},
};

use super::{RoomError, Rooms, state::StateMap};

/// Auth chains longer than this are not walked: a room that deep is beyond what the resolution
/// of one event may cost.
const MAX_AUTH_CHAIN: usize = 100_000;

impl Rooms {
    /// Resolves several states of a room into one.
    pub(super) fn resolve_states(
        &self,
        rules: &RoomVersionRules,
        states: &[&StateMap],
    ) -> Result<StateMap, RoomError> {
        if let [only] = states {
            return Ok((*only).clone());
        }
        if states.windows(2).all(|w| w[0] == w[1]) {
            return Ok(states.first().map(|s| (*s).clone()).unwrap_or_default());
        }
        let Some(state_res_rules) = rules.state_res.v2_rules() else {
            // Room version 1's resolution algorithm: not supported for forks. Keep the first.
            return Ok(states.first().map(|s| (*s).clone()).unwrap_or_default());
        };
        let mut maps = Vec::with_capacity(states.len());
        let mut chains = Vec::with_capacity(states.len());
        for state in states {
            let mut map = ResStateMap::new();
            let mut ids = Vec::with_capacity(state.len());
            for (shortstatekey, shorteventid) in state.iter() {
                let Some(key) = self.short.statekey(*shortstatekey)? else { continue };
                let Some(event_id) = self.short.eventid(*shorteventid)? else { continue };
                map.insert((key.0.clone(), key.1.clone()), event_id.clone());
                ids.push(event_id);
            }
            chains.push(self.auth_chain(ids)?.into_iter().collect::<EventIdSet<_>>());
            maps.push(map);
        }
        let fetch = |id: &ruma::EventId| self.pdu(&id.to_owned()).ok().flatten();
        let subgraph = |conflicted: &ResStateMap<Vec<OwnedEventId>>| {
            self.conflicted_subgraph(conflicted.values().flatten().cloned().collect())
                .ok()
                .map(|set| set.into_iter().collect::<EventIdSet<_>>())
        };
        let resolved = state_res::resolve(
            &rules.authorization,
            state_res_rules,
            maps.iter(),
            chains,
            fetch,
            subgraph,
        )
        .map_err(|e| RoomError::Forbidden(format!("state resolution failed: {e}")))?;
        let mut out = StateMap::new();
        for ((kind, state_key), event_id) in resolved {
            let kind = StateEventType::from(kind.to_string());
            let shortstatekey = self.short.get_or_create_shortstatekey(&kind, &state_key)?;
            if let Some(short) = self.short.shorteventid(&event_id)? {
                out.insert(shortstatekey, short);
            }
        }
        Ok(out)
    }

    /// Every event reachable from `events` through `auth_events`, the events included.
    pub fn auth_chain(
        &self,
        events: impl IntoIterator<Item = OwnedEventId>,
    ) -> Result<HashSet<OwnedEventId>, RoomError> {
        let mut seen = HashSet::new();
        let mut todo: Vec<OwnedEventId> = events.into_iter().collect();
        while let Some(id) = todo.pop() {
            if seen.len() >= MAX_AUTH_CHAIN {
                break;
            }
            let Some(pdu) = self.pdu(&id)? else { continue };
            for auth in &pdu.fields.auth_events {
                if seen.insert(auth.clone()) {
                    todo.push(auth.clone());
                }
            }
        }
        Ok(seen)
    }

    /// The conflicted state subgraph of room version 12 (MSC4297): the events on an auth path
    /// from one conflicted event to another.
    fn conflicted_subgraph(
        &self,
        conflicted: HashSet<OwnedEventId>,
    ) -> Result<HashSet<OwnedEventId>, RoomError> {
        // Every ancestor of a conflicted event, with its auth events.
        let mut parents: HashMap<OwnedEventId, Vec<OwnedEventId>> = HashMap::new();
        let mut todo: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
        while let Some(id) = todo.pop() {
            if parents.contains_key(&id) || parents.len() >= MAX_AUTH_CHAIN {
                continue;
            }
            let auth = self.pdu(&id)?.map(|p| p.fields.auth_events.clone()).unwrap_or_default();
            todo.extend(auth.iter().cloned());
            parents.insert(id, auth);
        }
        // An event is in the subgraph when it is, or descends from, a conflicted event.
        let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
        let ids: Vec<OwnedEventId> = parents.keys().cloned().collect();
        for id in ids {
            reaches_conflicted(&id, &parents, &conflicted, &mut reaches);
        }
        Ok(reaches.into_iter().filter(|(_, r)| *r).map(|(id, _)| id).collect())
    }
}

/// Whether `id` is conflicted or has a conflicted event in its auth chain (iterative, memoised).
fn reaches_conflicted(
    id: &OwnedEventId,
    parents: &HashMap<OwnedEventId, Vec<OwnedEventId>>,
    conflicted: &HashSet<OwnedEventId>,
    memo: &mut HashMap<OwnedEventId, bool>,
) -> bool {
    let mut stack = vec![(id.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if memo.contains_key(&node) {
            continue;
        }
        let auth = parents.get(&node).map(Vec::as_slice).unwrap_or_default();
        if expanded {
            let value = conflicted.contains(&node)
                || auth.iter().any(|a| memo.get(a).copied().unwrap_or(false));
            memo.insert(node, value);
        } else {
            stack.push((node.clone(), true));
            for a in auth {
                if !memo.contains_key(a) {
                    stack.push((a.clone(), false));
                }
            }
        }
    }
    memo.get(id).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> OwnedEventId {
        OwnedEventId::try_from(format!("${s}")).expect("event id")
    }

    #[test]
    fn the_subgraph_holds_the_paths_between_conflicted_events() {
        // create <- a <- b <- c, and create <- d: a and c conflicted.
        let mut parents = HashMap::new();
        parents.insert(id("create"), vec![]);
        parents.insert(id("a"), vec![id("create")]);
        parents.insert(id("b"), vec![id("a")]);
        parents.insert(id("c"), vec![id("b")]);
        parents.insert(id("d"), vec![id("create")]);
        let conflicted: HashSet<_> = [id("a"), id("c")].into_iter().collect();
        let mut memo = HashMap::new();
        for node in parents.keys() {
            reaches_conflicted(node, &parents, &conflicted, &mut memo);
        }
        let subgraph: HashSet<_> = memo.into_iter().filter(|(_, r)| *r).map(|(id, _)| id).collect();
        // `create` only leads away from conflicted events; `d` descends from none.
        let expected: HashSet<_> = [id("a"), id("b"), id("c")].into_iter().collect();
        assert_eq!(subgraph, expected);
    }
}
