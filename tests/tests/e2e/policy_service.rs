//! `relais-policy-service`, the policy service as a process of its own: the homeserver sends its
//! policy checks to it over HTTP (`policy.checks = "external"`), and it follows the directory the
//! homeserver writes in the unit rooms through its application service registration.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use relais_tests::{Client, Reply, TestServer, enc, federation::free_port, policy_service_binary};
use serde_json::{Value, json};

use crate::policy::{UNITS, create_account, login};

const AS_TOKEN: &str = "as-token-0123456789abcdef0123456789";
const HS_TOKEN: &str = "hs-token-0123456789abcdef0123456789";
const CHECKS_TOKEN: &str = "checks-token-0123456789abcdef01234";

/// A running `relais-policy-service`, stopped with SIGKILL when dropped.
struct PolicyService {
    child: Option<Child>,
    config: std::path::PathBuf,
    url: String,
}

impl PolicyService {
    fn write_config(dir: &Path, port: u16, homeserver: &str) -> std::path::PathBuf {
        Self::write_config_for(dir, port, homeserver, &[])
    }

    /// The configuration of a service for the homeserver `localhost` at `homeserver` and, after
    /// it, `more` homeservers: (server name, URL), whose tokens end with their position.
    fn write_config_for(
        dir: &Path,
        port: u16,
        homeserver: &str,
        more: &[(&str, &str)],
    ) -> std::path::PathBuf {
        let path = dir.join("policy-service.toml");
        let mut admins = vec!["\"@root:localhost\"".to_owned()];
        admins.extend(more.iter().map(|(name, _)| format!("\"@root:{name}\"")));
        let mut config = format!(
            "homeserver_url = \"{homeserver}\"\n\
             server_name = \"localhost\"\n\
             listen = \"127.0.0.1:{port}\"\n\
             url = \"http://127.0.0.1:{port}\"\n\
             as_token = \"{AS_TOKEN}\"\n\
             hs_token = \"{HS_TOKEN}\"\n\
             checks_token = \"{CHECKS_TOKEN}\"\n\
             [policy]\n\
             enabled = true\n\
             units = {UNITS}\n\
             server_admins = [{}]\n",
            admins.join(", ")
        );
        for (i, (name, url)) in more.iter().enumerate() {
            config.push_str(&format!(
                "[[homeservers]]\nhomeserver_url = \"{url}\"\nserver_name = \"{name}\"\n\
                 as_token = \"{AS_TOKEN}-{i}\"\nhs_token = \"{HS_TOKEN}-{i}\"\n\
                 checks_token = \"{CHECKS_TOKEN}-{i}\"\n"
            ));
        }
        std::fs::write(&path, config).expect("write the service's configuration");
        path
    }

    fn start(config: std::path::PathBuf, port: u16) -> Self {
        let mut service = Self { child: None, config, url: format!("http://127.0.0.1:{port}") };
        service.spawn();
        service
    }

    fn spawn(&mut self) {
        let child = Command::new(policy_service_binary())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env_clear()
            .env("RUST_LOG", std::env::var("RELAIS_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .spawn()
            .expect("start relais-policy-service");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Waits until the service has loaded the directory.
    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = reqwest::get(format!("{}/health", self.url)).await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "the policy service never loaded the directory");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PolicyService {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rule(body: &Value) -> &str {
    body["fr.relais.rule"].as_str().unwrap_or_default()
}

async fn invite(client: &Client, room: &str, user: &str) -> Reply {
    client
        .post(&format!("/_matrix/client/v3/rooms/{}/invite", enc(room)), json!({ "user_id": user }))
        .await
}

/// Retries `attempt` until it answers `status`: the service learns of directory changes from
/// the homeserver's transactions, a few milliseconds after the admin API answered.
async fn eventually<F, Fut>(status: u16, mut attempt: F) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = attempt().await;
        if reply.status == status {
            return reply;
        }
        assert!(Instant::now() < deadline, "still {} {:?}", reply.status, reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_standalone_policy_service_answers_the_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // The registration file comes from the service's own command.
    let config = PolicyService::write_config(dir.path(), port, "http://127.0.0.1:1");
    let output = Command::new(policy_service_binary())
        .arg("--config")
        .arg(&config)
        .arg("registration")
        .output()
        .expect("relais-policy-service registration");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let registration = dir.path().join("policy-service.yaml");
    std::fs::write(&registration, &output.stdout).expect("write the registration");

    let files = format!("[\"{}\"]", registration.display());
    let checks_url = format!("http://127.0.0.1:{port}/_relais/policy/v1/check");
    let server = TestServer::start_with(&[
        ("RELAIS_POLICY__ENABLED", "true"),
        ("RELAIS_POLICY__UNITS", UNITS),
        ("RELAIS_POLICY__SERVER_ADMINS", r#"["@root:localhost"]"#),
        ("RELAIS_POLICY__CHECKS", "external"),
        ("RELAIS_POLICY_CHECKS__URL", checks_url.as_str()),
        ("RELAIS_POLICY_CHECKS__TOKEN", CHECKS_TOKEN),
        ("RELAIS_APPSERVICES__REGISTRATION_FILES", files.as_str()),
    ]);
    let config = PolicyService::write_config(dir.path(), port, &server.url);
    let mut service = PolicyService::start(config, port);
    service.ready().await;

    // The configured server admin registers; the service lets them (exempt).
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    create_account(&root, "alice", "agent", "interior").await.ok();
    create_account(&root, "bob", "public", "interior").await.ok();
    // Logins are checked by the service, which learns of Alice from the unit room.
    let alice = login(&server, "alice").await;
    let bob = login(&server, "bob").await;

    // M1, decided by the service on the room's facts read through the admin API.
    let room = alice.create_room(json!({ "name": "Crisis cell" })).await;
    let denied = invite(&alice, &room, "@bob:localhost").await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "M1", "{denied}");
    assert!(denied["error"].as_str().unwrap().contains("M1"), "{denied}");

    // The check went to the service: without it, the invite is refused (fail closed).
    service.kill();
    let closed = invite(&alice, &room, "@bob:localhost").await.err(403, "M_FORBIDDEN");
    assert!(closed["error"].as_str().unwrap().contains("could not be reached"), "{closed}");

    // Restarted, it reads the directory again from the unit rooms.
    service.spawn();
    service.ready().await;
    let class = format!("/_matrix/client/v3/rooms/{}/state/fr.relais.access/", enc(&room));
    alice.put(&class, json!({ "class": "public" })).await.ok();
    invite(&alice, &room, "@bob:localhost").await.ok();
    bob.join(&room).await;
    // P1 on the current power levels: a public agent is at most a moderator.
    let levels_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", enc(&room));
    let mut levels = alice.get(&levels_path).await.ok();
    levels["users"]["@bob:localhost"] = json!(100);
    let denied = alice.put(&levels_path, levels.clone()).await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "P1", "{denied}");

    // A tier change made through the homeserver's admin API reaches the service.
    root.put(
        "/_relais/admin/v1/users/@bob:localhost",
        json!({ "tier": "agent", "reason": "now a state agent" }),
    )
    .await
    .ok();
    eventually(200, || alice.put(&levels_path, levels.clone())).await;

    // Registration with an invitation: the homeserver sends the token's hash, never the token.
    let issued = root
        .post("/_relais/admin/v1/invitations", json!({ "tier": "public", "unit": "culture" }))
        .await
        .ok();
    let token = issued["token"].as_str().unwrap().to_owned();
    let registered =
        eventually(200, || crate::policy::register_with_token(&server, "paula", &token)).await.ok();
    assert_eq!(registered["user_id"], "@paula:localhost");
    // Without an invitation, R1 refuses, with the service's message.
    let refused =
        crate::policy::register_without_invitation(&server, "eve").await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&refused), "R1", "{refused}");

    // The operator records a user from the service's command line: both the homeserver and
    // the service follow the record the bot wrote in the unit's room.
    create_account(&root, "dora", "agent", "interior").await.ok();
    let output = Command::new(policy_service_binary())
        .arg("--config")
        .arg(dir.path().join("policy-service.toml"))
        .args(["member", "@dora:localhost", "--tier", "public", "--unit", "culture"])
        .args(["--reason", "moved to the culture ministry"])
        .output()
        .expect("relais-policy-service member");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dora = root.get("/_relais/admin/v1/users/@dora:localhost").await.ok();
    assert_eq!(dora["record"]["tier"], "public", "{dora}");
    assert_eq!(dora["record"]["unit"], "culture", "{dora}");
    let closed_room = alice.create_room(json!({ "name": "Agents only" })).await;
    let denied = eventually(403, || invite(&alice, &closed_room, "@dora:localhost")).await.body;
    assert_eq!(rule(&denied), "M1", "{denied}");
    let log = root.get("/_relais/admin/v1/units/culture/audit").await.ok();
    assert!(log.to_string().contains("moved to the culture ministry"), "{log}");
    let bad = Command::new(policy_service_binary())
        .arg("--config")
        .arg(dir.path().join("policy-service.toml"))
        .args(["member", "@dora:localhost", "--tier", "agent", "--unit", "nowhere"])
        .output()
        .expect("relais-policy-service member");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nowhere"), "an unknown unit is named");

    // Its metrics count the checks it answered since it restarted (P1 refused one).
    let metrics = reqwest::get(format!("{}/metrics", service.url))
        .await
        .expect("service reachable")
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains(
            "relais_policy_service_checks_total{server=\"localhost\",callback=\"user_may_send_state_event\",outcome=\"refused\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("relais_policy_service_directory_loaded{server=\"localhost\"} 1"),
        "{metrics}"
    );

    // The service's endpoints want their tokens.
    let http = reqwest::Client::new();
    let anonymous = http
        .post(format!("{}/_relais/policy/v1/check/user_may_invite", service.url))
        .json(&json!({}))
        .send()
        .await
        .expect("service reachable");
    assert_eq!(anonymous.status(), 401);
    let forged = http
        .put(format!("{}/_matrix/app/v1/transactions/1", service.url))
        .bearer_auth("not-the-hs-token")
        .json(&json!({ "events": [] }))
        .send()
        .await
        .expect("service reachable");
    assert_eq!(forged.status(), 403);
}

/// The registration file of the service for `server`, from its own command.
fn registration(config: &Path, server: &str, into: &Path) -> String {
    let output = Command::new(policy_service_binary())
        .arg("--config")
        .arg(config)
        .args(["registration", "--server", server])
        .output()
        .expect("relais-policy-service registration");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::write(into, &output.stdout).expect("write the registration");
    format!("[\"{}\"]", into.display())
}

/// A homeserver named `name` whose checks go to the service at `port` with the tokens of
/// position `i` (none for the first homeserver).
fn external_homeserver(name: &str, port: u16, files: &str, token_suffix: &str) -> TestServer {
    let checks_url = format!("http://127.0.0.1:{port}/_relais/policy/v1/check");
    let token = format!("{CHECKS_TOKEN}{token_suffix}");
    let admins = format!("[\"@root:{name}\"]");
    TestServer::start_with(&[
        ("RELAIS_SERVER_NAME", name),
        ("RELAIS_POLICY__ENABLED", "true"),
        ("RELAIS_POLICY__UNITS", UNITS),
        ("RELAIS_POLICY__SERVER_ADMINS", admins.as_str()),
        ("RELAIS_POLICY__CHECKS", "external"),
        ("RELAIS_POLICY_CHECKS__URL", checks_url.as_str()),
        ("RELAIS_POLICY_CHECKS__TOKEN", token.as_str()),
        ("RELAIS_APPSERVICES__REGISTRATION_FILES", files),
    ])
}

#[tokio::test]
async fn one_service_guards_two_homeservers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let placeholder = "http://127.0.0.1:1";
    let more = [("other.test", placeholder)];
    let config = PolicyService::write_config_for(dir.path(), port, placeholder, &more);
    let files_a = registration(&config, "localhost", &dir.path().join("a.yaml"));
    let files_b = registration(&config, "other.test", &dir.path().join("b.yaml"));
    let a = external_homeserver("localhost", port, &files_a, "");
    let b = external_homeserver("other.test", port, &files_b, "-0");
    let config =
        PolicyService::write_config_for(dir.path(), port, &a.url, &[("other.test", &b.url)]);
    let service = PolicyService::start(config, port);
    service.ready().await;

    // On each homeserver, its own directory decides: an agent's room refuses a public agent.
    for (server, name) in [(&a, "localhost"), (&b, "other.test")] {
        let mut root = server.client();
        root.register("root", "pw-pw-pw-pw").await;
        create_account(&root, "alice", "agent", "interior").await.ok();
        create_account(&root, "bob", "public", "interior").await.ok();
        let alice = login(server, "alice").await;
        let room = alice.create_room(json!({ "name": "Crisis cell" })).await;
        let bob = format!("@bob:{name}");
        let denied = eventually(403, || invite(&alice, &room, &bob)).await.body;
        assert_eq!(rule(&denied), "M1", "{name}: {denied}");
    }
    let metrics = reqwest::get(format!("{}/metrics", service.url))
        .await
        .expect("service reachable")
        .text()
        .await
        .expect("metrics");
    for name in ["localhost", "other.test"] {
        let refused = format!(
            "relais_policy_service_checks_total{{server=\"{name}\",callback=\"user_may_invite\",outcome=\"refused\"}}"
        );
        assert!(metrics.contains(&refused), "{metrics}");
    }
}
