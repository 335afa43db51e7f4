//! The route table: every endpoint registered through `RumaRouter`, with its method, path and
//! auth scheme, as `relais routes` prints it. The authorisation audit test walks it, so a new
//! endpoint is checked without anyone adding it to a list.
//!
//! Routes are recorded while [`route_table`] builds the router, on its thread only; building the
//! router to serve records nothing.

use std::cell::RefCell;

use serde::Serialize;

/// One registered path of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Route {
    /// The HTTP method.
    pub method: String,
    /// The path template, parameters in braces (`/_matrix/client/v3/rooms/{room_id}/join`).
    pub path: String,
    /// The auth scheme of the request type: `access_token`, `access_token_optional`,
    /// `appservice_token`, `appservice_token_optional`, `no_access_token`, `server_signatures`
    /// (federation's `X-Matrix`) or `none`.
    pub auth: String,
}

thread_local! {
    static RECORDING: RefCell<Option<Vec<Route>>> = const { RefCell::new(None) };
}

/// The routes that `build` registers, sorted.
pub fn route_table<R>(build: impl FnOnce() -> R) -> Vec<Route> {
    RECORDING.set(Some(Vec::new()));
    let _router = build();
    let mut routes = RECORDING.take().unwrap_or_default();
    routes.sort();
    routes.dedup();
    routes
}

/// Records a route if [`route_table`] is recording on this thread.
pub(super) fn record(method: &str, path: &str, auth: &str) {
    RECORDING.with_borrow_mut(|recording| {
        if let Some(routes) = recording {
            routes.push(Route {
                method: method.to_owned(),
                path: path.to_owned(),
                auth: auth.to_owned(),
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_client_routes_with_their_auth_schemes() {
        let routes = route_table(crate::api::client::routes);
        let find = |method: &str, path: &str| {
            routes.iter().find(|r| r.method == method && r.path == path).map(|r| r.auth.as_str())
        };
        assert_eq!(find("GET", "/_matrix/client/v3/account/whoami"), Some("access_token"));
        assert_eq!(find("POST", "/_matrix/client/v3/login"), Some("appservice_token_optional"));
        assert_eq!(find("POST", "/_matrix/client/v3/refresh"), Some("no_access_token"));
        // Serving records nothing.
        let _ = crate::api::client::routes();
        assert!(RECORDING.with_borrow(Option::is_none));
    }
}
