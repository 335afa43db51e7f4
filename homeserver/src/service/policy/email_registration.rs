//! Registration with a verified e-mail address: the address's domain gives the tier and unit
//! (`policy.email_rules`, rule R1). An address that gives no tier is turned down before any
//! link is sent, since such people register with an invitation.

use relais_appservice::records::UserRecord;
use ruma::UserId;
use serde_json::json;

use super::PolicyError;
use crate::service::{Services, ephemeral::now_ms};

impl Services {
    /// With the policy on, why an account cannot be registered with `email` alone (R1), if it
    /// cannot.
    pub fn policy_refuses_email(&self, email: &str) -> Option<String> {
        if !self.policy.enabled() {
            return None;
        }
        let email = email.trim().to_lowercase();
        let directory = self.policy.service.directory();
        relais_policy::registration_refusal(Some(&email), None, &directory, now_ms())
            .and_then(|refusal| refusal.message())
    }

    /// Records `user`, registering with the verified `email`, with the tier and unit of the
    /// e-mail rule its domain matches; audited as `register_with_email` in the unit's room.
    pub fn policy_register_with_email(
        &self,
        user: &UserId,
        email: &str,
    ) -> Result<UserRecord, PolicyError> {
        let directory = self.policy.service.directory();
        let grant = relais_policy::registration_grant(Some(email), None, &directory, now_ms())
            .ok_or_else(|| {
                PolicyError::Refused(self.policy_refuses_email(email).unwrap_or_default())
            })?;
        let Some(unit) = grant.unit else {
            return Err(PolicyError::Refused(format!(
                "the e-mail rule matching {email} names no organisation unit"
            )));
        };
        let record = UserRecord::new(grant.tier, unit);
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        let details = json!({ "tier": record.tier, "unit": record.unit, "email_domain": domain });
        let bot = self.policy_bot()?;
        self.record_user(
            &bot,
            "email_rule",
            "register_with_email",
            user,
            record.clone(),
            details,
            "",
        )?;
        Ok(record)
    }
}
