//! Power levels as the room version defines them, for checks the authorization rules leave to the
//! server (redacting someone else's event, for instance).

use ruma::{
    Int, UserId,
    room_version_rules::AuthorizationRules,
    state_res::events::{RoomCreateEvent, RoomPowerLevelsEvent, RoomPowerLevelsIntField},
};

use super::{RoomError, pdu::PduEvent};

/// A user's power in a room; `None` means unlimited (a creator in room version 12 and later).
pub fn user_power(
    user: &UserId,
    create: &PduEvent,
    power_levels: Option<&PduEvent>,
    rules: &AuthorizationRules,
) -> Result<Option<Int>, RoomError> {
    if rules.explicitly_privilege_room_creators {
        let creators =
            RoomCreateEvent::new(create).creators(rules).map_err(RoomError::BadRequest)?;
        if creators.contains(user) {
            return Ok(None);
        }
    }
    match power_levels {
        Some(pl) => Ok(Some(
            RoomPowerLevelsEvent::new(pl)
                .user_power_level(user, rules)
                .map_err(RoomError::BadRequest)?,
        )),
        // Without a power levels event the creator has 100 and everyone else 0.
        None if create.sender() == user => Ok(Some(Int::from(100))),
        None => Ok(Some(Int::from(0))),
    }
}

/// The level a power-levels field requires (`redact`, `invite`, ...).
pub fn required_level(
    field: RoomPowerLevelsIntField,
    power_levels: Option<&PduEvent>,
    rules: &AuthorizationRules,
) -> Result<Int, RoomError> {
    match power_levels {
        Some(pl) => RoomPowerLevelsEvent::new(pl)
            .get_as_int_or_default(field, rules)
            .map_err(RoomError::BadRequest),
        None => Ok(field.default_value()),
    }
}

/// Whether `power` reaches `level`.
pub fn reaches(power: Option<Int>, level: Int) -> bool {
    power.is_none_or(|p| p >= level)
}

impl super::Rooms {
    /// The level a state event of `kind` needs in the current state (`events`, else
    /// `state_default`, else 50; 0 without a power levels event).
    fn state_level(power_levels: Option<&PduEvent>, kind: &ruma::events::StateEventType) -> Int {
        let Some(pl) = power_levels else { return Int::from(0) };
        let content = pl.content_object();
        let level = content
            .get("events")
            .and_then(|e| e.get(kind.to_string()))
            .or_else(|| content.get("state_default"))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(50);
        Int::new_saturating(level)
    }

    /// The user's power in the room's current state, the power levels event and the room's rules.
    #[allow(clippy::type_complexity, reason = "a private helper returning three related values")]
    pub fn current_power(
        &self,
        room_id: &ruma::RoomId,
        user: &UserId,
    ) -> Result<(Option<Int>, Option<std::sync::Arc<PduEvent>>, AuthorizationRules), RoomError>
    {
        let (_, meta) = self.require_meta(room_id)?;
        let rules = meta
            .version
            .rules()
            .ok_or_else(|| RoomError::UnsupportedVersion(meta.version.clone()))?
            .authorization;
        let create = self
            .state_event(meta.state, &ruma::events::StateEventType::RoomCreate, "")?
            .ok_or_else(|| RoomError::Forbidden("room has no create event".into()))?;
        let power_levels =
            self.state_event(meta.state, &ruma::events::StateEventType::RoomPowerLevels, "")?;
        let power = user_power(user, &create, power_levels.as_deref(), &rules)?;
        Ok((power, power_levels, rules))
    }

    /// Whether `user`, joined to the room, may send a state event of `kind` by power level.
    pub fn may_send_state(
        &self,
        room_id: &ruma::RoomId,
        user: &UserId,
        kind: &ruma::events::StateEventType,
    ) -> Result<bool, RoomError> {
        if !self.is_joined(room_id, user)? {
            return Ok(false);
        }
        let (power, power_levels, _) = self.current_power(room_id, user)?;
        Ok(reaches(power, Self::state_level(power_levels.as_deref(), kind)))
    }

    /// The level a state event of `kind` needs, for error messages.
    pub fn state_event_level(
        &self,
        room_id: &ruma::RoomId,
        kind: &ruma::events::StateEventType,
    ) -> Result<Int, RoomError> {
        let (_, meta) = self.require_meta(room_id)?;
        let power_levels =
            self.state_event(meta.state, &ruma::events::StateEventType::RoomPowerLevels, "")?;
        Ok(Self::state_level(power_levels.as_deref(), kind))
    }

    /// Whether `user` reaches the level of a power-levels field (`invite`, `redact`, ...).
    pub fn reaches_level(
        &self,
        room_id: &ruma::RoomId,
        user: &UserId,
        field: RoomPowerLevelsIntField,
    ) -> Result<bool, RoomError> {
        let (power, power_levels, rules) = self.current_power(room_id, user)?;
        Ok(reaches(power, required_level(field, power_levels.as_deref(), &rules)?))
    }
}
