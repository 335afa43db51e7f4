//! Workspaces created from the templates of the configuration (`policy.workspace_templates`): a
//! space owned by an organisation unit, with an access class, and its rooms linked as children
//! (`m.space.child` in the space, `m.space.parent` in each room). Creation is decided as rule W1
//! (with the unit's approval rule) and audited in the unit's room. The administrative actions on
//! an existing workspace live in [`super::workspace_admin`].

use relais_appservice::records::{AuditEntry, names};
use relais_policy::{AccessClass, Action, UnitId};
use ruma::{
    OwnedRoomId, RoomId, RoomVersionId, UserId,
    api::client::room::{Visibility, create_room},
    events::{StateEventType, TimelineEventType},
    room::RoomType,
    serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PolicyError;
use crate::{
    config::SUPPORTED_ROOM_VERSIONS,
    service::{
        Services,
        rooms::{PduTemplate, create::CreateRoom},
    },
};

/// A request for a new workspace.
#[derive(Clone, Debug, Deserialize)]
pub struct NewWorkspace {
    /// The template's identifier; `standard` when absent.
    #[serde(default = "standard_template")]
    pub template: String,
    /// The workspace's name (the space's `m.room.name`).
    pub name: String,
    /// The workspace's topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// The unit owning the workspace; the creator's own unit when absent.
    #[serde(default)]
    pub unit: Option<String>,
    /// The workspace's class; `agents` when absent (W1).
    #[serde(default)]
    pub class: Option<AccessClass>,
    /// The admin who approved the creation, where the unit requires approval.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// Why (for the audit log).
    #[serde(default)]
    pub reason: String,
}

fn standard_template() -> String {
    "standard".to_owned()
}

/// A room of a workspace.
#[derive(Clone, Debug, Serialize)]
pub struct WorkspaceRoom {
    /// The room.
    pub room_id: OwnedRoomId,
    /// Its name.
    pub name: String,
    /// Its access class.
    pub class: AccessClass,
}

/// A workspace just created.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedWorkspace {
    /// The space.
    pub room_id: OwnedRoomId,
    /// The unit owning it.
    pub unit: UnitId,
    /// Its access class.
    pub class: AccessClass,
    /// Its rooms, in the template's order.
    pub rooms: Vec<WorkspaceRoom>,
}

/// What a new room of a workspace is made of.
struct RoomSpec<'a> {
    name: &'a str,
    topic: Option<&'a str>,
    space: bool,
    initial_state: Vec<Value>,
    events_default: Option<i64>,
}

impl Services {
    /// Creates a workspace from a template: decides W1 (creators may be server admins, agents in
    /// their own unit or in units they administer, with an approval where the unit requires one),
    /// creates the space and the template's rooms through the same preparation as `createRoom`
    /// (so the policy bot is an additional creator of each), links them and audits the creation.
    pub fn create_workspace(
        &self,
        actor: &UserId,
        new: NewWorkspace,
    ) -> Result<CreatedWorkspace, PolicyError> {
        self.require_policy()?;
        let template = self
            .config
            .policy
            .workspace_templates
            .iter()
            .find(|t| t.id == new.template)
            .ok_or_else(|| {
                PolicyError::NotFound(format!("there is no workspace template {:?}", new.template))
            })?;
        let unit = match &new.unit {
            Some(unit) => UnitId::from(unit.as_str()),
            None => self
                .policy_record(actor)
                .map(|r| r.unit)
                .ok_or_else(|| PolicyError::BadRequest("`unit` is required".into()))?,
        };
        // Server admins pass every check: the unit must still exist for them.
        if !self.policy.service.directory().units().contains(&unit) {
            return Err(PolicyError::NotFound(format!("there is no organisation unit `{unit}`")));
        }
        let class = new.class.unwrap_or(AccessClass::Agents);
        if class == AccessClass::Direct {
            return Err(PolicyError::BadRequest(
                "a workspace cannot be a direct conversation".into(),
            ));
        }
        let approved_by = new.approved_by.as_deref().map(relais_policy::UserId::from);
        let action =
            Action::CreateWorkspace { unit: unit.clone(), class: Some(class), approved_by };
        let authority = self.authorise(actor, &action)?;

        let space = self.create_workspace_room(
            actor,
            RoomSpec {
                name: &new.name,
                topic: new.topic.as_deref(),
                space: true,
                initial_state: vec![
                    access_event(class),
                    json!({
                        "type": names::WORKSPACE,
                        "state_key": "",
                        "content": { "unit": unit, "status": "active", "template": template.id },
                    }),
                ],
                events_default: None,
            },
        )?;
        let server = self.config.server_name.as_str();
        let mut rooms = Vec::with_capacity(template.rooms.len());
        for room in &template.rooms {
            // A room inside a workspace is never more open than the workspace.
            let room_class = room.class.map_or(class, |c| c.within(class));
            let room_id = self.create_workspace_room(
                actor,
                RoomSpec {
                    name: &room.name,
                    topic: (!room.topic.is_empty()).then_some(room.topic.as_str()),
                    space: false,
                    initial_state: vec![
                        access_event(room_class),
                        json!({
                            "type": "m.space.parent",
                            "state_key": space,
                            "content": { "via": [server], "canonical": true },
                        }),
                        // Members of the workspace join its rooms without a separate invitation;
                        // the policy still decides every join (M1).
                        json!({
                            "type": "m.room.join_rules",
                            "state_key": "",
                            "content": {
                                "join_rule": "restricted",
                                "allow": [{ "type": "m.room_membership", "room_id": space }],
                            },
                        }),
                    ],
                    events_default: room.events_default,
                },
            )?;
            self.rooms.append(
                &space,
                actor,
                PduTemplate::state(
                    StateEventType::SpaceChild,
                    room_id.as_str(),
                    json!({ "via": [server] }),
                ),
                None,
            )?;
            rooms.push(WorkspaceRoom { room_id, name: room.name.clone(), class: room_class });
        }
        let details = json!({
            "name": new.name,
            "template": template.id,
            "class": class,
            "approved_by": new.approved_by,
            "rooms": rooms.iter().map(|r| r.room_id.as_str()).collect::<Vec<_>>(),
        });
        self.audit_workspace(&unit, &action, actor, &authority, &space, details, &new.reason)?;
        tracing::info!(%space, %unit, template = template.id, "workspace created");
        Ok(CreatedWorkspace { room_id: space, unit, class, rooms })
    }

    /// Creates one room of a workspace as `createRoom` would, after the policy's preparation.
    fn create_workspace_room(
        &self,
        actor: &UserId,
        spec: RoomSpec<'_>,
    ) -> Result<OwnedRoomId, PolicyError> {
        let bad = |e: serde_json::Error| PolicyError::BadRequest(e.to_string());
        let mut request = create_room::v3::Request::new();
        request.name = Some(spec.name.to_owned());
        request.topic = spec.topic.map(str::to_owned);
        request.visibility = Visibility::Private;
        request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
        // Version 12: the policy bot is an additional creator, so it can always recover the room.
        request.room_version = Some(RoomVersionId::V12);
        if spec.space {
            let mut creation = create_room::v3::CreationContent::new();
            creation.room_type = Some(RoomType::Space);
            request.creation_content = Some(Raw::new(&creation).map_err(bad)?);
        }
        if let Some(level) = spec.events_default {
            let content = json!({ "events_default": level });
            request.power_level_content_override =
                Some(Raw::from_json(serde_json::value::to_raw_value(&content).map_err(bad)?));
        }
        request.initial_state = spec
            .initial_state
            .iter()
            .map(|e| serde_json::value::to_raw_value(e).map(Raw::from_json))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        self.policy_prepare_room(actor, &mut request)?;
        let account = self.accounts.account(actor)?.unwrap_or_default();
        let room = self.rooms.create_room_without_invites(
            actor,
            CreateRoom {
                request: &request,
                default_version: &self.config.rooms.default_version,
                supported: &SUPPORTED_ROOM_VERSIONS,
                displayname: account.displayname,
                avatar_url: account.avatar_url,
            },
        )?;
        // Being a creator gives the bot unbounded power, but only a joined member sends events:
        // it joins now, while someone can still invite it, so that it can act when every admin
        // has left (recover, close, lock).
        let bot = self.policy_bot()?;
        self.rooms.invite(&room, actor, &bot, None, false)?;
        self.join(&room, &bot, None)?;
        Ok(room)
    }

    /// Writes the audit entry of a workspace action in `unit`'s room.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per action, each naming every part of the entry"
    )]
    pub(super) fn audit_workspace(
        &self,
        unit: &UnitId,
        action: &Action,
        actor: &UserId,
        authority: &str,
        space: &RoomId,
        details: Value,
        reason: &str,
    ) -> Result<(), PolicyError> {
        let entry = AuditEntry {
            action: action.name().to_owned(),
            actor: actor.as_str().into(),
            authority: authority.to_owned(),
            target: space.to_string(),
            unit: unit.clone(),
            details,
            reason: reason.to_owned(),
        };
        self.write_audit(&entry)
    }

    /// Appends an audit entry to the timeline of its unit's room, as the policy bot.
    pub(super) fn write_audit(&self, entry: &AuditEntry) -> Result<(), PolicyError> {
        let unit = &entry.unit;
        let room = self
            .policy
            .unit_room(unit.as_str())
            .ok_or_else(|| PolicyError::NotFound(format!("unit {unit} has no room")))?;
        let bot = self.policy_bot()?;
        let content =
            serde_json::to_value(entry).map_err(|e| PolicyError::BadRequest(e.to_string()))?;
        self.rooms.append(
            &room,
            &bot,
            PduTemplate::message(TimelineEventType::from(names::AUDIT), content),
            None,
        )?;
        Ok(())
    }
}

/// The `fr.relais.access` initial state event of `class`.
fn access_event(class: AccessClass) -> Value {
    json!({ "type": names::ACCESS, "state_key": "", "content": class.to_event_content() })
}
