//! The authorisation audit: every client route the server registers (listed by `relais routes`,
//! from ruma's metadata, so a new endpoint is covered without being added here) refuses callers
//! without a valid identity; `history` checks what members and others may read.

mod history;

use std::{collections::BTreeMap, path::Path};

use relais_tests::{Client, Reply, TestServer, enc, relais_binary};
use reqwest::Method;
use serde_json::{Value, json};

const AS_TOKEN: &str = "audit-as-token";

/// One registered path of an endpoint, as `relais routes` prints it.
struct Route {
    method: Method,
    path: String,
    auth: String,
}

fn routes() -> Vec<Route> {
    let output = std::process::Command::new(relais_binary()).arg("routes").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let route: Value = serde_json::from_str(line).unwrap();
            Route {
                method: route["method"].as_str().unwrap().parse().unwrap(),
                path: route["path"].as_str().unwrap().to_owned(),
                auth: route["auth"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// The path with every parameter filled. Authentication comes before anything else, so the
/// values need not name anything real; they only have to be valid path segments.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        out.push_str(&enc("!x:localhost"));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A server with an application service whose users are `@audit_*`.
fn server_with_appservice(dir: &Path) -> TestServer {
    let file = dir.join("audit.yaml");
    std::fs::write(
        &file,
        format!(
            "id: audit\nurl: null\nas_token: {AS_TOKEN}\nhs_token: audit-hs-token\n\
             sender_localpart: audit_bot\nrate_limited: false\n\
             namespaces:\n  users:\n    - exclusive: true\n      regex: '@audit_.*:localhost'\n"
        ),
    )
    .unwrap();
    let files = format!("[\"{}\"]", file.display());
    TestServer::start_with(&[("RELAIS_APPSERVICES__REGISTRATION_FILES", files.as_str())])
}

fn with_token(server: &TestServer, token: &str) -> Client {
    let mut client = server.client();
    client.token = Some(token.to_owned());
    client
}

/// Calls `route` as `client`, with an empty JSON body where there may be one.
async fn call(client: &Client, route: &Route, query: &str) -> Reply {
    let path = format!("{}{query}", concrete(&route.path));
    let body = (route.method != Method::GET && route.method != Method::DELETE).then(|| json!({}));
    client.request(route.method.clone(), &path, body).await
}

/// Every refusal that did not match, by route, to report them all at once.
#[derive(Default)]
struct Failures(BTreeMap<String, Vec<String>>);

impl Failures {
    fn check(&mut self, route: &Route, who: &str, reply: &Reply, status: u16, errcode: &str) {
        if reply.status != status || reply.body["errcode"] != errcode {
            self.0.entry(format!("{} {}", route.method, route.path)).or_default().push(format!(
                "{who}: expected {status} {errcode}, got {} {}",
                reply.status, reply.body
            ));
        }
    }

    #[track_caller]
    fn assert_none(self) {
        let report: Vec<String> = self.0.iter().map(|(r, f)| format!("{r}: {f:?}")).collect();
        assert!(report.is_empty(), "{} routes failed:\n{}", report.len(), report.join("\n"));
    }
}

#[tokio::test]
async fn every_route_refuses_missing_invalid_and_revoked_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_appservice(dir.path());
    let routes = routes();
    assert!(routes.len() > 200, "only {} routes listed", routes.len());
    assert!(routes.iter().any(|r| r.path == "/_matrix/client/v3/sync" && r.auth == "access_token"));

    let anonymous = server.client();
    let forged = with_token(&server, "not-a-real-token");
    // A token that was valid: its user has been deactivated since.
    let deactivated = server.register("dave").await;
    let uia = deactivated.post("/_matrix/client/v3/account/deactivate", json!({})).await;
    let session = uia.body["session"].as_str().unwrap().to_owned();
    let auth = json!({ "type": "m.login.password", "session": session, "password": "correct horse battery",
                       "identifier": { "type": "m.id.user", "user": "dave" } });
    deactivated.post("/_matrix/client/v3/account/deactivate", json!({ "auth": auth })).await.ok();
    // A token that was valid: its device has logged out since.
    let logged_out = server.register("erin").await;
    logged_out.post("/_matrix/client/v3/logout", json!({})).await.ok();
    let appservice = with_token(&server, AS_TOKEN);
    let user = server.register("frank").await;

    let mut failures = Failures::default();
    let mut checked = 0;
    for route in &routes {
        match route.auth.as_str() {
            "access_token" => {
                let missing = call(&anonymous, route, "").await;
                failures.check(route, "no token", &missing, 401, "M_MISSING_TOKEN");
                let outside = call(&appservice, route, "?user_id=%40frank%3Alocalhost").await;
                failures.check(
                    route,
                    "appservice outside its namespace",
                    &outside,
                    403,
                    "M_FORBIDDEN",
                );
            }
            "access_token_optional" => {}
            "appservice_token" => {
                let missing = call(&anonymous, route, "").await;
                failures.check(route, "no token", &missing, 401, "M_MISSING_TOKEN");
                let user_token = call(&user, route, "").await;
                failures.check(route, "a user's token", &user_token, 401, "M_UNKNOWN_TOKEN");
            }
            // Public endpoints: login, registration, discovery, `/refresh`...
            _ => continue,
        }
        // A token given must be valid, even where none is needed.
        for (who, client) in [
            ("forged token", &forged),
            ("deactivated user", &deactivated),
            ("logged out", &logged_out),
        ] {
            let reply = call(client, route, "").await;
            failures.check(route, who, &reply, 401, "M_UNKNOWN_TOKEN");
        }
        checked += 1;
    }
    failures.assert_none();
    assert!(checked > 200, "only {checked} authenticated routes");
}
