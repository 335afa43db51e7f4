//! Push rules: `GET /pushrules/`, `GET /pushrules/global/`, and per rule
//! `GET|PUT|DELETE /pushrules/global/{kind}/{ruleId}` with its `enabled` and `actions`.
//!
//! <https://spec.matrix.org/v1.18/client-server-api/#push-rules-api>. Rules are the user's
//! `m.push_rules` account data: every change reaches the user's other clients through `/sync`.

use std::sync::Arc;

use ruma::api::client::push::{
    delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled, get_pushrules_all,
    get_pushrules_global_scope, set_pushrule, set_pushrule_actions, set_pushrule_enabled,
};

use crate::{
    api::{error::ApiResult, ruma::Ruma},
    service::Services,
};

/// `GET /_matrix/client/v3/pushrules/`: the user's rules, server-default ones included.
pub async fn get_all(
    services: Arc<Services>,
    req: Ruma<get_pushrules_all::v3::Request>,
) -> ApiResult<get_pushrules_all::v3::Response> {
    let rules = services.push.rules().get(&req.auth.user_id)?;
    Ok(get_pushrules_all::v3::Response::new(rules.ruleset.clone()))
}

/// `GET /_matrix/client/v3/pushrules/global/`
pub async fn get_global(
    services: Arc<Services>,
    req: Ruma<get_pushrules_global_scope::v3::Request>,
) -> ApiResult<get_pushrules_global_scope::v3::Response> {
    let rules = services.push.rules().get(&req.auth.user_id)?;
    Ok(get_pushrules_global_scope::v3::Response::new(rules.ruleset.clone()))
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn get(
    services: Arc<Services>,
    req: Ruma<get_pushrule::v3::Request>,
) -> ApiResult<get_pushrule::v3::Response> {
    let rule = services.push.rules().rule(&req.auth.user_id, &req.body.kind, &req.body.rule_id)?;
    Ok(get_pushrule::v3::Response::new(rule))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`: creates or replaces a user rule,
/// placed by `before`/`after`.
pub async fn set(
    services: Arc<Services>,
    req: Ruma<set_pushrule::v3::Request>,
) -> ApiResult<set_pushrule::v3::Response> {
    let body = req.body;
    services.push.rules().insert(
        &req.auth.user_id,
        body.rule,
        body.before.as_deref(),
        body.after.as_deref(),
    )?;
    Ok(set_pushrule::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`
pub async fn delete(
    services: Arc<Services>,
    req: Ruma<delete_pushrule::v3::Request>,
) -> ApiResult<delete_pushrule::v3::Response> {
    services.push.rules().remove(&req.auth.user_id, &req.body.kind, &req.body.rule_id)?;
    Ok(delete_pushrule::v3::Response::new())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
pub async fn get_enabled(
    services: Arc<Services>,
    req: Ruma<get_pushrule_enabled::v3::Request>,
) -> ApiResult<get_pushrule_enabled::v3::Response> {
    let rule = services.push.rules().rule(&req.auth.user_id, &req.body.kind, &req.body.rule_id)?;
    Ok(get_pushrule_enabled::v3::Response::new(rule.enabled))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`
pub async fn set_enabled(
    services: Arc<Services>,
    req: Ruma<set_pushrule_enabled::v3::Request>,
) -> ApiResult<set_pushrule_enabled::v3::Response> {
    let body = &req.body;
    services.push.rules().set_enabled(
        &req.auth.user_id,
        &body.kind,
        &body.rule_id,
        body.enabled,
    )?;
    Ok(set_pushrule_enabled::v3::Response::new())
}

/// `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
pub async fn get_actions(
    services: Arc<Services>,
    req: Ruma<get_pushrule_actions::v3::Request>,
) -> ApiResult<get_pushrule_actions::v3::Response> {
    let rule = services.push.rules().rule(&req.auth.user_id, &req.body.kind, &req.body.rule_id)?;
    Ok(get_pushrule_actions::v3::Response::new(rule.actions))
}

/// `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`
pub async fn set_actions(
    services: Arc<Services>,
    req: Ruma<set_pushrule_actions::v3::Request>,
) -> ApiResult<set_pushrule_actions::v3::Response> {
    let body = req.body;
    services.push.rules().set_actions(
        &req.auth.user_id,
        &body.kind,
        &body.rule_id,
        body.actions,
    )?;
    Ok(set_pushrule_actions::v3::Response::new())
}
