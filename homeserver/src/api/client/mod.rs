//! The Client-Server API: one module per area of the spec, and the route table.

mod account;
mod account_data;
mod appservice;
mod backup;
mod devices;
pub(crate) mod directory;
mod discovery;
mod ephemeral;
mod filter;
mod keys;
pub(crate) mod media;
mod members;
pub(crate) mod membership;
mod message;
mod notifications;
mod peeking;
mod presence;
mod profile;
mod push_rules;
mod pushers;
mod refresh;
mod register;
mod relations;
mod room_admin;
mod room_create;
mod search;
mod session;
mod sliding_sync;
mod spaces;
mod state;
mod sync;
mod threepid;
mod to_device;
pub(crate) mod uiaa;
mod unconfigured;
mod user_directory;

use std::sync::Arc;

use axum::Router;

use super::ruma::RumaRouter;
use crate::service::Services;

/// State paths with the empty state key left out, which clients use for `m.room.name` & co.
const EMPTY_STATE_KEY: &[&str] = &[
    "/_matrix/client/r0/rooms/{room_id}/state/{event_type}",
    "/_matrix/client/r0/rooms/{room_id}/state/{event_type}/",
    "/_matrix/client/v3/rooms/{room_id}/state/{event_type}",
    "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/",
];

/// The room summary path of the unstable MSC3266 that Element 1.11 still calls.
const NHEKO_SUMMARY: &[&str] =
    &["/_matrix/client/unstable/im.nheko.summary/summary/{room_id_or_alias}"];

/// Every client endpoint, registered from ruma's metadata.
pub fn routes() -> Router<Arc<Services>> {
    let threads = Router::new()
        .ruma_route(relations::threads)
        .route_layer(axum::middleware::map_request(relations::default_include));
    Router::new()
        .merge(threads)
        .ruma_route(discovery::well_known)
        .ruma_route(discovery::versions)
        .ruma_route(discovery::capabilities)
        .ruma_route(session::login_types)
        .ruma_route(session::login)
        .ruma_route(session::logout)
        .ruma_route(session::logout_all)
        .ruma_route(session::whoami)
        .ruma_route(refresh::refresh)
        .ruma_route(register::register)
        .ruma_route(register::available)
        .ruma_route(register::token_validity)
        .ruma_route(appservice::ping)
        .ruma_route(account::change_password)
        .ruma_route(account::deactivate)
        .ruma_route(threepid::list)
        .ruma_route(threepid::add)
        .ruma_route(threepid::delete)
        .ruma_route(threepid::request_registration_token)
        .ruma_route(threepid::request_add_token)
        .ruma_route(threepid::request_password_token)
        .route("/_relais/email/validate", axum::routing::get(threepid::validate_link))
        .ruma_route(devices::list)
        .ruma_route(devices::get)
        .ruma_route(devices::update)
        .ruma_route(devices::delete)
        .ruma_route(devices::delete_many)
        .ruma_route(profile::get)
        .ruma_route(profile::get_displayname)
        .ruma_route(profile::set_displayname)
        .ruma_route(profile::get_avatar)
        .ruma_route(profile::set_avatar)
        .ruma_route(filter::create)
        .ruma_route(filter::get)
        .ruma_route(room_create::create_room)
        .ruma_route(membership::join_by_id)
        .ruma_route(membership::join_by_id_or_alias)
        .ruma_route(membership::knock)
        .ruma_route(membership::invite)
        .ruma_route(membership::leave)
        .ruma_route(membership::forget)
        .ruma_route(membership::kick)
        .ruma_route(membership::ban)
        .ruma_route(membership::unban)
        .ruma_route(membership::joined)
        .ruma_route(message::send)
        .ruma_route(message::redact)
        .ruma_route(message::get_event)
        .ruma_route(message::context)
        .ruma_route(message::messages)
        .ruma_route(state::get_all)
        .ruma_route(state::get_one)
        .ruma_route_at(EMPTY_STATE_KEY, state::get_one)
        .ruma_route(state::send)
        .ruma_route_at(EMPTY_STATE_KEY, state::send)
        .ruma_route(members::members)
        .ruma_route(members::joined)
        .ruma_route(directory::create)
        .ruma_route(directory::get)
        .ruma_route(directory::delete)
        .ruma_route(directory::room_aliases)
        .ruma_route(directory::get_visibility)
        .ruma_route(directory::set_visibility)
        .ruma_route(directory::public_rooms)
        .ruma_route(directory::public_rooms_filtered)
        .ruma_route_custom(sync::sync)
        .ruma_route(sliding_sync::sliding_sync)
        .ruma_route(ephemeral::typing)
        .ruma_route(ephemeral::receipt)
        .ruma_route(ephemeral::read_markers)
        .ruma_route(account_data::set_global)
        .ruma_route(account_data::get_global)
        .ruma_route(account_data::set_room)
        .ruma_route(account_data::get_room)
        .ruma_route(account_data::get_room_tags)
        .ruma_route(account_data::put_tag)
        .ruma_route(account_data::delete_room_tag)
        .ruma_route(presence::set)
        .ruma_route(presence::get)
        .ruma_route(user_directory::search)
        .ruma_route(keys::upload)
        .ruma_route(keys::query)
        .ruma_route(keys::claim)
        .ruma_route(keys::changes)
        .ruma_route(keys::upload_signing_keys)
        .ruma_route(keys::upload_signatures)
        .ruma_route(to_device::send)
        .ruma_route(backup::create_version)
        .ruma_route(backup::latest_version)
        .ruma_route(backup::get_version)
        .ruma_route(backup::update_version)
        .ruma_route(backup::delete_version)
        .ruma_route(backup::put_keys)
        .ruma_route(backup::put_room_keys)
        .ruma_route(backup::put_session_key)
        .ruma_route(backup::get_keys)
        .ruma_route(backup::get_room_keys)
        .ruma_route(backup::get_session_key)
        .ruma_route(backup::delete_keys)
        .ruma_route(backup::delete_room_keys)
        .ruma_route(backup::delete_session_key)
        .ruma_route(relations::all)
        .ruma_route(relations::by_type)
        .ruma_route(relations::by_type_and_event_type)
        .ruma_route(search::search)
        .ruma_route(spaces::hierarchy)
        .ruma_route(spaces::summary)
        .ruma_route_at(NHEKO_SUMMARY, spaces::summary)
        .ruma_route(peeking::initial_sync)
        .ruma_route(room_admin::upgrade)
        .ruma_route(room_admin::report)
        .ruma_route(unconfigured::turn_server)
        .ruma_route(push_rules::get_all)
        .ruma_route(push_rules::get_global)
        .ruma_route(push_rules::get)
        .ruma_route(push_rules::set)
        .ruma_route(push_rules::delete)
        .ruma_route(push_rules::get_enabled)
        .ruma_route(push_rules::set_enabled)
        .ruma_route(push_rules::get_actions)
        .ruma_route(push_rules::set_actions)
        .ruma_route(pushers::list)
        .ruma_route(pushers::set)
        .ruma_route(notifications::list)
        .ruma_route(unconfigured::protocols)
        .merge(media::routes())
}
