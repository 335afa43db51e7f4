//! Questions local clients ask about other servers' users, aliases, directories and media,
//! answered by asking those servers: profiles, room aliases, public room directories, device keys
//! and one-time keys, media downloads and thumbnails. Used only when `federation.enabled`; the
//! client handlers answer as before otherwise.

use std::{collections::BTreeMap, time::Duration};

use futures_util::future::join_all;
use ruma::{
    OneTimeKeyAlgorithm, OwnedDeviceId, OwnedServerName, OwnedUserId, RoomAliasId, ServerName,
    UInt, UserId,
    api::{
        client::keys::{claim_keys, get_keys},
        federation::{
            directory::{get_public_rooms, get_public_rooms_filtered},
            keys::{claim_keys as fed_claim_keys, get_keys as fed_get_keys},
            query::{get_profile_information, get_room_information},
        },
    },
    directory::{Filter, RoomNetwork},
    profile::ProfileFieldName,
};
use serde_json::{Value, json};

use super::FederationError;
use crate::service::{Services, media::content_type, rooms::pdu::to_raw};

/// How long `keys/query` and `keys/claim` wait for other servers when the client names no
/// timeout (the spec's default).
const DEFAULT_KEYS_TIMEOUT: Duration = Duration::from_secs(10);

/// What `failures` says about a server that did not answer.
fn failure(error: &FederationError) -> Value {
    json!({ "errcode": "M_UNKNOWN", "error": error.to_string() })
}

/// Groups the entries of `wanted` by the users' servers, this server's users left out.
fn by_server<V: Clone>(
    own: &ServerName,
    wanted: &BTreeMap<OwnedUserId, V>,
) -> BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, V>> {
    let mut out: BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, V>> = BTreeMap::new();
    for (user, value) in wanted {
        if user.server_name() != own {
            out.entry(user.server_name().to_owned())
                .or_default()
                .insert(user.clone(), value.clone());
        }
    }
    out
}

impl Services {
    /// Whether questions about other servers' users are asked over federation.
    pub fn federation_enabled(&self) -> bool {
        self.config.federation.enabled
    }

    /// A remote user's profile (or its one `field`), from their server.
    pub async fn remote_profile(
        &self,
        user: &UserId,
        field: Option<ProfileFieldName>,
    ) -> Result<BTreeMap<String, Value>, FederationError> {
        let mut request = get_profile_information::v1::Request::new(user.to_owned());
        request.field = field;
        let response = self.federation.client.send(user.server_name(), request).await?;
        Ok(response.into_iter().collect())
    }

    /// The room a remote alias names and the servers to join it through, from the alias's
    /// server.
    pub async fn remote_alias(
        &self,
        alias: &RoomAliasId,
    ) -> Result<get_room_information::v1::Response, FederationError> {
        let request = get_room_information::v1::Request::new(alias.to_owned());
        self.federation.client.send(alias.server_name(), request).await
    }

    /// A page of a remote server's public room directory.
    pub async fn remote_public_rooms(
        &self,
        server: &ServerName,
        limit: Option<UInt>,
        since: Option<String>,
        room_network: RoomNetwork,
    ) -> Result<get_public_rooms::v1::Response, FederationError> {
        let mut request = get_public_rooms::v1::Request::new();
        request.limit = limit;
        request.since = since;
        request.room_network = room_network;
        self.federation.client.send(server, request).await
    }

    /// A filtered page of a remote server's public room directory.
    pub async fn remote_public_rooms_filtered(
        &self,
        server: &ServerName,
        limit: Option<UInt>,
        since: Option<String>,
        filter: Filter,
        room_network: RoomNetwork,
    ) -> Result<get_public_rooms_filtered::v1::Response, FederationError> {
        let mut request = get_public_rooms_filtered::v1::Request::new();
        request.limit = limit;
        request.since = since;
        request.filter = filter;
        request.room_network = room_network;
        self.federation.client.send(server, request).await
    }

    /// Asks the servers of the remote users in `wanted` for their device and cross-signing
    /// keys, all at once, and merges the answers into `response`, with `requester`'s own
    /// signatures on their master keys; a server that fails or does not answer within `timeout`
    /// is listed in `failures`.
    pub async fn query_remote_keys(
        &self,
        requester: &UserId,
        wanted: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
        timeout: Option<Duration>,
        response: &mut get_keys::v3::Response,
    ) {
        let timeout = timeout.unwrap_or(DEFAULT_KEYS_TIMEOUT);
        let queries = by_server(&self.globals.server_name, wanted).into_iter().map(
            |(server, users)| async move {
                let request = fed_get_keys::v1::Request::new(users);
                let result =
                    self.federation.client.send_with_timeout(&server, request, timeout).await;
                (server, result)
            },
        );
        for (server, result) in join_all(queries).await {
            let answer = match result {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(%server, error = %e, "remote keys/query failed");
                    response.failures.insert(server.to_string(), failure(&e));
                    continue;
                }
            };
            // A server answers for its own users only.
            let own = |user: &UserId| user.server_name() == server;
            response
                .device_keys
                .extend(answer.device_keys.into_iter().filter(|(user, _)| own(user)));
            for (user, master) in answer.master_keys {
                if !own(&user) {
                    continue;
                }
                let master = match serde_json::from_str::<Value>(master.json().get()) {
                    Ok(mut value) => {
                        if let Err(e) =
                            self.keys.merge_viewer_signatures(requester, &user, &mut value)
                        {
                            tracing::error!(%user, error = %e, "reading own signatures failed");
                        }
                        to_raw(&value)
                    }
                    Err(_) => master,
                };
                response.master_keys.insert(user, master);
            }
            response
                .self_signing_keys
                .extend(answer.self_signing_keys.into_iter().filter(|(user, _)| own(user)));
        }
    }

    /// The current master keys of remote `users`, asked of their servers (for signing them);
    /// users whose server fails or has no master key for them are left out.
    pub async fn remote_master_keys(
        &self,
        users: impl IntoIterator<Item = OwnedUserId>,
    ) -> BTreeMap<OwnedUserId, Value> {
        let wanted: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>> =
            users.into_iter().map(|u| (u, Vec::new())).collect();
        let queries = by_server(&self.globals.server_name, &wanted).into_iter().map(
            |(server, users)| async move {
                let request = fed_get_keys::v1::Request::new(users);
                (server.clone(), self.federation.client.send(&server, request).await)
            },
        );
        let mut out = BTreeMap::new();
        for (server, result) in join_all(queries).await {
            match result {
                Ok(answer) => {
                    for (user, master) in answer.master_keys {
                        if user.server_name() == server
                            && let Ok(value) = serde_json::from_str(master.json().get())
                        {
                            out.insert(user, value);
                        }
                    }
                }
                Err(e) => tracing::debug!(%server, error = %e, "remote master keys unavailable"),
            }
        }
        out
    }

    /// A remote server's media, or a thumbnail of it (`thumbnail`: width, height, method,
    /// animated), asked of that server over authenticated federation media. Nothing is kept
    /// here. A server answering with a redirect to another URL is refused: following it would
    /// let any server make this one fetch any address.
    pub async fn remote_media(
        &self,
        server: &ServerName,
        media_id: &str,
        thumbnail: Option<(UInt, UInt, Option<ruma::media::Method>, Option<bool>)>,
        timeout: Duration,
    ) -> Result<crate::service::media::Content, FederationError> {
        use ruma::api::federation::authenticated_media::{
            FileOrLocation, get_content, get_content_thumbnail,
        };
        let content = match thumbnail {
            None => {
                let mut request = get_content::v1::Request::new(media_id.to_owned());
                request.timeout_ms = timeout;
                self.federation.client.send(server, request).await?.content
            }
            Some((width, height, method, animated)) => {
                let mut request =
                    get_content_thumbnail::v1::Request::new(media_id.to_owned(), width, height);
                request.method = method;
                request.animated = animated;
                request.timeout_ms = timeout;
                self.federation.client.send(server, request).await?.content
            }
        };
        match content {
            FileOrLocation::File(file) => Ok(crate::service::media::Content {
                bytes: file.file,
                content_type: content_type::sanitize(file.content_type.as_deref()),
                filename: content_type::sanitize_filename(
                    file.content_disposition.as_ref().and_then(|d| d.filename.as_deref()),
                ),
            }),
            _ => Err(FederationError::InvalidResponse {
                server: server.to_owned(),
                reason: "the media is served elsewhere (a redirect), which is not followed".into(),
            }),
        }
    }

    /// Claims one-time keys of remote users' devices from their servers, all at once, and
    /// merges them into `response`; failing servers are listed in `failures`.
    pub async fn claim_remote_keys(
        &self,
        wanted: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, OneTimeKeyAlgorithm>>,
        timeout: Option<Duration>,
        response: &mut claim_keys::v3::Response,
    ) {
        let timeout = timeout.unwrap_or(DEFAULT_KEYS_TIMEOUT);
        let claims = by_server(&self.globals.server_name, wanted).into_iter().map(
            |(server, users)| async move {
                let request = fed_claim_keys::v1::Request::new(users);
                let result =
                    self.federation.client.send_with_timeout(&server, request, timeout).await;
                (server, result)
            },
        );
        for (server, result) in join_all(claims).await {
            match result {
                Ok(answer) => response.one_time_keys.extend(
                    answer
                        .one_time_keys
                        .into_iter()
                        .filter(|(user, _)| user.server_name() == server),
                ),
                Err(e) => {
                    tracing::debug!(%server, error = %e, "remote keys/claim failed");
                    response.failures.insert(server.to_string(), failure(&e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ruma::{owned_user_id, server_name};

    use super::*;

    #[test]
    fn wanted_users_are_grouped_by_their_server_without_local_ones() {
        let wanted: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>> = [
            (owned_user_id!("@a:local.test"), vec![]),
            (owned_user_id!("@b:one.test"), vec!["DEV".into()]),
            (owned_user_id!("@c:one.test"), vec![]),
            (owned_user_id!("@d:two.test"), vec![]),
        ]
        .into_iter()
        .collect();
        let grouped = by_server(server_name!("local.test"), &wanted);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[server_name!("one.test")].len(), 2);
        assert_eq!(grouped[server_name!("two.test")].len(), 1);
    }
}
