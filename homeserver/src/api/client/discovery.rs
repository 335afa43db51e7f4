//! Server discovery: `/.well-known/matrix/client`, `/versions`, `/capabilities`.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{
    RoomVersionId,
    api::client::discovery::{
        discover_homeserver,
        get_capabilities::v3::{
            self as capabilities, Capabilities, RoomVersionStability, RoomVersionsCapability,
        },
        get_supported_versions,
    },
};

use crate::{
    api::{error::ApiResult, ruma::Ruma},
    config::SUPPORTED_ROOM_VERSIONS,
    service::Services,
};

/// The spec versions whose client-server endpoints this server implements.
const SPEC_VERSIONS: &[&str] = &[
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
    "v1.11", "v1.12",
];

/// `GET /.well-known/matrix/client`
pub async fn well_known(
    services: Arc<Services>,
    _: Ruma<discover_homeserver::Request>,
) -> ApiResult<discover_homeserver::Response> {
    Ok(discover_homeserver::Response::new(discover_homeserver::HomeserverInfo::new(
        services.base_url(),
    )))
}

/// `GET /_matrix/client/versions`
pub async fn versions(
    _: Arc<Services>,
    _: Ruma<get_supported_versions::Request>,
) -> ApiResult<get_supported_versions::Response> {
    let mut response = get_supported_versions::Response::new(
        SPEC_VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
    );
    response.unstable_features = BTreeMap::from([
        ("org.matrix.msc4222".to_owned(), true),
        ("org.matrix.msc3827.stable".to_owned(), true),
        // Cross-signing keys and signatures are stored and served (keys/device_signing,
        // keys/signatures); clients set up cross-signing only when this is advertised.
        ("org.matrix.e2e_cross_signing".to_owned(), true),
        // Simplified sliding sync (MSC4186): Element X needs it.
        ("org.matrix.simplified_msc3575".to_owned(), true),
    ]);
    Ok(response)
}

/// `GET /_matrix/client/v3/capabilities`
pub async fn capabilities(
    services: Arc<Services>,
    _: Ruma<capabilities::Request>,
) -> ApiResult<capabilities::Response> {
    let available: BTreeMap<RoomVersionId, RoomVersionStability> =
        SUPPORTED_ROOM_VERSIONS.iter().map(|v| (v.clone(), RoomVersionStability::Stable)).collect();
    let mut caps = Capabilities::new();
    caps.room_versions =
        RoomVersionsCapability::new(services.config.rooms.default_version.clone(), available);
    Ok(capabilities::Response::new(caps))
}
