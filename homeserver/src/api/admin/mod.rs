//! The admin API: delegated administration of the policy layer (`/_relais/admin/v1/...`),
//! authorised by the caller's Matrix access token and decided by their delegation.
//! `docs/admin-api.md` documents it.

mod invitations;
mod policy;
mod registration_tokens;
mod synapse;
mod workspaces;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post, put},
};

use crate::service::Services;

/// The admin routes.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/_relais/admin/v1/users", post(policy::create_user))
        .route("/_relais/admin/v1/users/{user_id}", get(policy::get_user).put(policy::change_user))
        .route(
            "/_relais/admin/v1/units/{unit}/admins/{user_id}",
            put(policy::appoint_admin).delete(policy::remove_admin),
        )
        .route("/_relais/admin/v1/units/{unit}/audit", get(policy::audit_log))
        .route("/_relais/admin/v1/invitations", post(invitations::issue).get(invitations::list))
        .route("/_relais/admin/v1/invitations/{id}", axum::routing::delete(invitations::revoke))
        .route("/_relais/admin/v1/workspaces", post(workspaces::create))
        .route("/_relais/admin/v1/workspaces/templates", get(workspaces::templates))
        .route("/_relais/admin/v1/workspaces/{room_id}/close", post(workspaces::close))
        .route("/_relais/admin/v1/workspaces/{room_id}/lock", post(workspaces::lock))
        .route("/_relais/admin/v1/workspaces/{room_id}/archive", post(workspaces::archive))
        .route("/_relais/admin/v1/workspaces/{room_id}/transfer", post(workspaces::transfer))
        .route("/_relais/admin/v1/workspaces/{room_id}/recover", post(workspaces::recover))
        .route("/_relais/admin/v1/workspaces/{room_id}/members", get(workspaces::members))
        .merge(synapse::routes())
        .merge(registration_tokens::routes())
}
