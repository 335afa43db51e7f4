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
        let creators = RoomCreateEvent::new(create)
            .creators(rules)
            .map_err(RoomError::BadRequest)?;
        if creators.contains(user) {
            return Ok(None);
        }
    }
    match power_levels {
        Some(pl) => Ok(Some(
            RoomPowerLevelsEvent::new(pl).user_power_level(user, rules).map_err(RoomError::BadRequest)?,
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
