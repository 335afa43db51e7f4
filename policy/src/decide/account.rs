//! R1 (register) and R2 (log in / use the account).

use serde::{Deserialize, Serialize};

use super::{Ctx, Unusable, admin};
use crate::action::Invitation;
use crate::decision::{Decision, Refusal, Rule, Verdict, refuse};
use crate::directory::{AccountStatus, Directory};
use crate::ids::{UnitId, UserId};
use crate::tier::Tier;
use crate::time::format_utc;

/// R2: the actor's account works now.
pub(super) fn usable(ctx: &Ctx<'_>) -> Verdict {
    match Unusable::of(ctx.dir, ctx.user, ctx.now_ms) {
        None => Ok(()),
        Some(problem) => {
            refuse(Rule::R2, problem.to_owner(ctx.record.and_then(|r| r.sponsor.as_ref())))
        }
    }
}

/// R1: agents and public agents register by email-domain rule or invitation, guests only by
/// invitation.
pub(super) fn register(
    ctx: &Ctx<'_>,
    email: Option<&str>,
    invitation: Option<&Invitation>,
) -> Verdict {
    if !ctx.dir.is_local(ctx.user) {
        return refuse(Rule::R1, format!("{} is not a user ID of this server", ctx.user));
    }
    // A deactivated ID stays retired: reusing it would let a newcomer inherit the old account's
    // rooms, invitations and audit trail.
    if ctx.record.is_some_and(|r| r.status == AccountStatus::Deactivated) {
        return refuse(
            Rule::R1,
            format!("{} belonged to a deactivated account and cannot be reused", ctx.user),
        );
    }
    grant(ctx.dir, email, invitation, ctx.now_ms).map(|_| ())
}

/// What a new account gets at registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationGrant {
    /// The tier to record.
    pub tier: Tier,
    /// The unit to record; `None` only for a guest by an email rule without a unit, which
    /// cannot happen since guests need an invitation (kept optional for the type's honesty).
    pub unit: Option<UnitId>,
    /// The sponsor to record, for a guest: the invitation's issuer.
    pub sponsor: Option<UserId>,
}

/// The tier, unit and sponsor a registration gets, or `None` if it is refused (see R1).
///
/// When both the email rule and a valid invitation apply, the higher tier wins; on a tie the
/// invitation wins, because an administrator chose its unit on purpose.
pub fn registration_grant(
    email: Option<&str>,
    invitation: Option<&Invitation>,
    directory: &Directory,
    now_ms: u64,
) -> Option<RegistrationGrant> {
    grant(directory, email, invitation, now_ms).ok()
}

/// The refusal of a registration with `email` and `invitation`, if R1 refuses it: lets a
/// server turn down an address before sending it a verification link.
pub fn registration_refusal(
    email: Option<&str>,
    invitation: Option<&Invitation>,
    directory: &Directory,
    now_ms: u64,
) -> Option<Decision> {
    grant(directory, email, invitation, now_ms)
        .err()
        .map(|refusal| Decision::Deny { rule: refusal.rule, reason: refusal.reason })
}

fn grant(
    dir: &Directory,
    email: Option<&str>,
    invitation: Option<&Invitation>,
    now_ms: u64,
) -> Result<RegistrationGrant, Refusal> {
    let by_domain = email
        .map(|e| dir.match_email(e))
        .filter(|m| m.tier != Tier::Guest)
        .map(|m| RegistrationGrant { tier: m.tier, unit: m.unit, sponsor: None });
    let by_invitation = invitation.map(|inv| {
        valid_invitation(dir, inv, now_ms).map(|()| RegistrationGrant {
            tier: inv.tier,
            unit: Some(inv.unit.clone()),
            sponsor: (inv.tier == Tier::Guest).then(|| inv.issued_by.clone()),
        })
    });
    match (by_domain, by_invitation) {
        (Some(d), Some(Ok(i))) => Ok(if d.tier > i.tier { d } else { i }),
        (Some(d), _) => Ok(d),
        (None, Some(result)) => result,
        (None, None) => Err(Refusal {
            rule: Rule::R1,
            reason:
                "your email address does not identify a state or public-sector agent, and guests \
                     register only with an invitation; ask the agent you work with to invite you"
                    .to_owned(),
        }),
    }
}

/// An invitation is valid while unexpired and while its issuer may still issue it: a revoked
/// delegation or a locked issuer revokes pending invitations too.
fn valid_invitation(dir: &Directory, inv: &Invitation, now_ms: u64) -> Verdict {
    if inv.expires_at_ms <= now_ms {
        return refuse(
            Rule::R1,
            format!(
                "this invitation expired on {}; ask {} for a new one",
                format_utc(inv.expires_at_ms),
                inv.issued_by
            ),
        );
    }
    let issuer = Ctx::new(&inv.issued_by, dir, now_ms);
    if issuer.is_trusted() {
        return Ok(());
    }
    if let Some(problem) = Unusable::of(dir, &inv.issued_by, now_ms) {
        return refuse(
            Rule::R1,
            format!("this invitation is no longer valid: {}", problem.about(&inv.issued_by)),
        );
    }
    admin::may_issue_invitation(&issuer, inv.tier, &inv.unit).map_err(|refusal| Refusal {
        rule: Rule::R1,
        reason: format!(
            "this invitation is no longer valid: its issuer may not issue it ({})",
            refusal.reason
        ),
    })
}
