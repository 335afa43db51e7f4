//! The extensions of a sliding sync response: to-device messages (with their own `since`),
//! end-to-end encryption (device lists, key counts), account data, receipts and typing.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{
    OwnedRoomId, UserId,
    api::client::sync::sync_events::v5::{
        request::{self, ExtensionRoomConfig},
        response,
    },
};
use serde_json::json;

use super::SlidingSyncError;
use crate::service::{Services, rooms::pdu::to_raw};

/// The rooms of a response as the room-scoped extensions see them.
pub(super) struct Window<'a> {
    /// Rooms of each list in its ranges.
    pub lists: &'a BTreeMap<String, Vec<OwnedRoomId>>,
    /// Subscribed rooms.
    pub subscriptions: &'a BTreeSet<OwnedRoomId>,
    /// Rooms sent from scratch in this response: their ephemeral data is sent from scratch too.
    pub initial: &'a BTreeSet<OwnedRoomId>,
}

impl Window<'_> {
    /// The rooms an extension covers: the lists and subscriptions it names, all by default.
    fn rooms(
        &self,
        lists: Option<&Vec<String>>,
        rooms: Option<&Vec<ExtensionRoomConfig>>,
    ) -> BTreeSet<OwnedRoomId> {
        let mut out = BTreeSet::new();
        match lists {
            None => out.extend(self.lists.values().flatten().cloned()),
            Some(names) => {
                for name in names {
                    if name == "*" {
                        out.extend(self.lists.values().flatten().cloned());
                    } else if let Some(list) = self.lists.get(name) {
                        out.extend(list.iter().cloned());
                    }
                }
            }
        }
        match rooms {
            None => out.extend(self.subscriptions.iter().cloned()),
            Some(rooms) => {
                for room in rooms {
                    match room {
                        ExtensionRoomConfig::AllSubscribed => {
                            out.extend(self.subscriptions.iter().cloned());
                        }
                        ExtensionRoomConfig::Room(room) if self.subscriptions.contains(room) => {
                            out.insert(room.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }
}

/// Who and where the extensions are computed for.
pub(super) struct ExtensionContext<'a> {
    /// The user.
    pub user: &'a UserId,
    /// The device.
    pub device: &'a ruma::DeviceId,
    /// Position of the previous response of the connection; `None` on a new connection.
    pub since: Option<u64>,
    /// Position this response covers.
    pub upto: u64,
    /// Rooms the client has (after this response).
    pub known_rooms: &'a BTreeSet<OwnedRoomId>,
}

impl Services {
    /// Computes the extensions the request enables.
    pub(super) fn sliding_extensions(
        &self,
        ctx: &ExtensionContext<'_>,
        req: &request::Extensions,
        window: &Window<'_>,
    ) -> Result<response::Extensions, SlidingSyncError> {
        let mut out = response::Extensions::default();
        if req.to_device.enabled == Some(true) {
            // The to-device stream has its own token: the client keeps it across connections.
            let since = req.to_device.since.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
            let mut to_device = response::ToDevice::default();
            to_device.events = self.keys.to_device_events(ctx.user, ctx.device, since, ctx.upto)?;
            to_device.next_batch = ctx.upto.to_string();
            out.to_device = Some(to_device);
        }
        if req.e2ee.enabled == Some(true) {
            if let Some(since) = ctx.since {
                let changes = self.device_list_changes(ctx.user, since, ctx.upto)?;
                out.e2ee.device_lists.changed = changes.changed.into_iter().collect();
                out.e2ee.device_lists.left = changes.left.into_iter().collect();
            }
            out.e2ee.device_one_time_keys_count =
                self.keys.one_time_key_counts(ctx.user, ctx.device)?;
            out.e2ee.device_unused_fallback_key_types =
                Some(self.keys.unused_fallback_key_types(ctx.user, ctx.device)?);
        }
        if req.account_data.enabled == Some(true) {
            self.account_data_extension(ctx, window.initial, &mut out.account_data)?;
        }
        if req.receipts.enabled == Some(true) {
            let rooms = window.rooms(req.receipts.lists.as_ref(), req.receipts.rooms.as_ref());
            for room in rooms {
                let since = if window.initial.contains(&room) { 0 } else { ctx.since.unwrap_or(0) };
                if let Some(event) =
                    self.ephemeral.receipts_since(&room, ctx.user, since, ctx.upto)?
                {
                    out.receipts.rooms.insert(room, to_raw(&event));
                }
            }
        }
        if req.typing.enabled == Some(true) {
            let rooms = window.rooms(req.typing.lists.as_ref(), req.typing.rooms.as_ref());
            for room in rooms {
                let since = if window.initial.contains(&room) { 0 } else { ctx.since.unwrap_or(0) };
                if let Some(event) = self.ephemeral.typing_since(&room, since) {
                    out.typing.rooms.insert(room, to_raw(&event));
                }
            }
        }
        Ok(out)
    }

    /// Global account data and the account data of the rooms the client has, changed since the
    /// previous response (all of it on a new connection, and for rooms sent from scratch).
    fn account_data_extension(
        &self,
        ctx: &ExtensionContext<'_>,
        initial: &BTreeSet<OwnedRoomId>,
        out: &mut response::AccountData,
    ) -> Result<(), SlidingSyncError> {
        let since = ctx.since.unwrap_or(0);
        let mut seen: BTreeSet<(Option<OwnedRoomId>, String)> = BTreeSet::new();
        let mut changes = self.account_data.changes_since(ctx.user, since, ctx.upto)?;
        if since > 0 && !initial.is_empty() {
            let older = self.account_data.changes_since(ctx.user, 0, since)?;
            changes.splice(
                0..0,
                older
                    .into_iter()
                    .filter(|c| c.room_id.as_ref().is_some_and(|r| initial.contains(r))),
            );
        }
        // Newest first, so a type changed twice is sent once, with its latest content.
        for change in changes.into_iter().rev() {
            if !seen.insert((change.room_id.clone(), change.kind.clone())) {
                continue;
            }
            let event = json!({ "type": change.kind, "content": change.content });
            match change.room_id {
                None => out.global.push(to_raw(&event)),
                Some(room) if ctx.known_rooms.contains(&room) => {
                    out.rooms.entry(room).or_default().push(to_raw(&event));
                }
                Some(_) => {}
            }
        }
        out.global.reverse();
        for events in out.rooms.values_mut() {
            events.reverse();
        }
        Ok(())
    }
}

/// Whether the extensions carry something new (key counts, always present, do not count).
pub(super) fn has_news(extensions: &response::Extensions) -> bool {
    extensions.to_device.as_ref().is_some_and(|t| !t.events.is_empty())
        || !extensions.e2ee.device_lists.is_empty()
        || !extensions.account_data.is_empty()
        || !extensions.receipts.is_empty()
        || !extensions.typing.is_empty()
}
