//! What the operator does from the command line: record a user in the directory
//! (`relais-policy-service member ...`). On Relais the admin API and the bot do this; in front of
//! Synapse, where nothing else writes the directory, this is how users get their tier.

use relais_policy::{Tier, UserRecord};
use serde_json::json;

use super::{StandaloneError, config::ServiceConfig, directory::Follower, homeserver::Homeserver};
use crate::{
    PolicyService,
    records::{AuditEntry, names},
};

/// A user's record as the operator gives it.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// The user, on this server.
    pub user: String,
    /// Their tier.
    pub tier: Tier,
    /// Their unit.
    pub unit: String,
    /// A guest's sponsor.
    pub sponsor: Option<String>,
    /// When a guest's account ends, in milliseconds since the epoch.
    pub expires_at_ms: Option<u64>,
    /// Why, for the audit log.
    pub reason: String,
}

/// Writes `member`'s record in their unit's room, and its audit entry, as the bot. The record
/// is checked against the directory first (a known unit, a guest's sponsor and expiry).
pub async fn record_member(
    config: &ServiceConfig,
    member: NewMember,
) -> Result<(), StandaloneError> {
    // The homeserver of the user's server.
    let server_name = member.user.split_once(':').map_or("", |(_, server)| server);
    let server = config.homeserver(server_name).ok_or_else(|| {
        StandaloneError::Invalid(format!(
            "{} is not a user of a homeserver this service guards",
            member.user
        ))
    })?;
    let timeout = std::time::Duration::from_millis(config.request_timeout_ms);
    let homeserver = Homeserver::new(&server, timeout)?;
    homeserver.register_bot(&config.policy.bot_localpart).await?;
    let follower = Follower::new(PolicyService::new(config.policy_for(server_name), server_name)?);
    follower.load(&homeserver, server_name).await?;
    let record = match (member.tier, &member.sponsor, member.expires_at_ms) {
        (Tier::Guest, Some(sponsor), Some(expires)) => {
            UserRecord::guest(member.unit.as_str(), sponsor.as_str(), expires)
        }
        (Tier::Guest, _, _) => {
            return Err(StandaloneError::Invalid(
                "a guest needs a sponsor (--sponsor) and an end (--expires-in-days)".into(),
            ));
        }
        (tier, _, _) => UserRecord::new(tier, member.unit.as_str()),
    };
    // The same checks as every record: refused, the directory stays as it was.
    follower.service().apply_member(&member.user, record.clone())?;
    let room = follower
        .room_of(&member.unit)
        .ok_or_else(|| StandaloneError::Invalid(format!("unit {} has no room", member.unit)))?;
    let key = member.user.strip_prefix('@').unwrap_or(&member.user);
    let content =
        serde_json::to_value(&record).map_err(|e| StandaloneError::Invalid(e.to_string()))?;
    homeserver.put_state(&room, names::MEMBER, key, &content).await?;
    let bot = config.bot(server_name);
    let audit = AuditEntry {
        action: "set_member".into(),
        actor: bot.as_str().into(),
        authority: "server_admin (relais-policy-service command line)".into(),
        target: member.user.clone(),
        unit: member.unit.as_str().into(),
        details: json!({ "tier": record.tier, "sponsor": record.sponsor, "expires_at_ms": record.expires_at_ms }),
        reason: member.reason,
    };
    let audit =
        serde_json::to_value(&audit).map_err(|e| StandaloneError::Invalid(e.to_string()))?;
    homeserver.send_event(&room, names::AUDIT, &audit).await?;
    Ok(())
}
