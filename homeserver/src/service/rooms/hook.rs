//! Services that react to every new event (push rules and notification counts, for instance)
//! register an [`EventHook`]; the builder runs the hooks once the event is written and before its
//! stream position becomes visible, so no `/sync` sees the event without what the hooks derived
//! from it.

use std::sync::Arc;

use super::{Rooms, pdu::PduEvent};

/// Something that reacts to every new event of every room.
pub trait EventHook: Send + Sync {
    /// Called with the room locked, after `pdu` is written and before its stream position is
    /// visible. A hook handles (logs) its own errors: the event is already stored and stays so.
    fn event_written(&self, rooms: &Rooms, pdu: &PduEvent);
}

impl Rooms {
    /// Registers a hook run for every new event.
    pub fn add_event_hook(&self, hook: Arc<dyn EventHook>) {
        self.event_hooks.write().push(hook);
    }

    /// Runs the hooks for a written event.
    pub(super) fn run_event_hooks(&self, pdu: &PduEvent) {
        let hooks = self.event_hooks.read().clone();
        for hook in hooks {
            hook.event_written(self, pdu);
        }
    }
}
