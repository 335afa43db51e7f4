//! E-mail addresses: registering with a verified address (whose domain gives the tier and unit
//! when the policy is on), the addresses of an account, and the verification links, through a
//! real SMTP exchange with a test mail server.

use relais_tests::{Client, Reply, TestServer, smtp::SmtpSink};
use serde_json::{Value, json};

use crate::policy::{UNITS, login};

const PASSWORD: &str = "pw-pw-pw-pw";

fn start(smtp: &SmtpSink) -> TestServer {
    start_with(smtp, &[])
}

fn start_with(smtp: &SmtpSink, extra: &[(&str, &str)]) -> TestServer {
    let port = smtp.port.to_string();
    let mut env = vec![
        ("RELAIS_POLICY__ENABLED", "true"),
        ("RELAIS_POLICY__UNITS", UNITS),
        ("RELAIS_POLICY__SERVER_ADMINS", r#"["@root:localhost"]"#),
        (
            "RELAIS_POLICY__EMAIL_RULES",
            r#"[{domain="interieur.gouv.fr", tier="agent", unit="interior"}]"#,
        ),
        ("RELAIS_EMAIL__SMTP_HOST", "127.0.0.1"),
        ("RELAIS_EMAIL__SMTP_PORT", port.as_str()),
        ("RELAIS_EMAIL__SMTP_SECURITY", "none"),
        ("RELAIS_EMAIL__FROM", "Relais <noreply@relais.test>"),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(&env)
}

async fn request_token(
    client: &Client,
    path: &str,
    secret: &str,
    email: &str,
    attempt: u64,
) -> Reply {
    client
        .post(path, json!({ "client_secret": secret, "email": email, "send_attempt": attempt }))
        .await
}

/// Opens a verification link as a browser would (without following redirects).
async fn open(link: &str) -> (u16, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = http.get(link).send().await.expect("link reachable");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn email_auth(sid: &str, secret: &str, session: &str) -> Value {
    json!({
        "type": "m.login.email.identity",
        "threepid_creds": { "sid": sid, "client_secret": secret },
        "session": session,
    })
}

/// `/account/3pid/add` with the session of a link: the password is asked first (UIA).
async fn add_address(client: &Client, sid: &str, secret: &str) -> Reply {
    let path = "/_matrix/client/v3/account/3pid/add";
    let add = json!({ "sid": sid, "client_secret": secret });
    let first = client.post(path, add.clone()).await;
    assert_eq!(first.status, 401, "the password is asked first: {:?}", first.body);
    let mut with_password = add;
    with_password["auth"] = json!({
        "type": "m.login.password", "session": first.body["session"], "password": PASSWORD,
        "identifier": { "type": "m.id.user", "user": client.user_id().await },
    });
    client.post(path, with_password).await
}

#[tokio::test]
async fn a_verified_address_gives_its_tier_and_unit_and_stays_on_the_account() {
    let smtp = SmtpSink::start();
    let server = start(&smtp);
    let mut root = server.client();
    root.register("root", PASSWORD).await;
    let client = server.client();

    // The registration flows offer the e-mail stage.
    let first = client
        .post("/_matrix/client/v3/register", json!({ "username": "marie", "password": PASSWORD }))
        .await;
    assert_eq!(first.status, 401, "{:?}", first.body);
    assert!(first.body["flows"].to_string().contains("m.login.email.identity"), "{:?}", first.body);
    let session = first.body["session"].as_str().unwrap().to_owned();

    // An address no rule covers is turned down before anything is sent (R1).
    let path = "/_matrix/client/v3/register/email/requestToken";
    let denied = request_token(&client, path, "secret-1", "someone@example.com", 1)
        .await
        .err(403, "M_THREEPID_DENIED");
    assert!(denied["error"].as_str().unwrap().contains("R1"), "{denied}");
    assert!(smtp.mails().is_empty());
    request_token(&client, path, "secret-1", "not an address", 1).await.err(400, "M_INVALID_PARAM");

    // A covered address gets a link; asking again with the same attempt sends nothing more.
    let sid =
        request_token(&client, path, "secret-1", "Marie@Interieur.gouv.fr", 1).await.ok()["sid"]
            .as_str()
            .unwrap()
            .to_owned();
    let again = request_token(&client, path, "secret-1", "Marie@Interieur.gouv.fr", 1).await.ok();
    assert_eq!(again["sid"], sid.as_str());
    let mail = smtp.wait_for("marie@interieur.gouv.fr", 1).await;
    assert!(mail.data.contains("From: Relais <noreply@relais.test>"), "{}", mail.data);
    let link = mail.link("/_relais/email/validate").expect("a verification link");

    // Until the link is opened, the stage does not pass.
    let register = |auth: Value| {
        let client = client.clone();
        async move {
            client
                .post(
                    "/_matrix/client/v3/register",
                    json!({ "username": "marie", "password": PASSWORD, "auth": auth }),
                )
                .await
        }
    };
    let pending = register(email_auth(&sid, "secret-1", &session)).await;
    assert_eq!(pending.status, 401, "{:?}", pending.body);
    assert_eq!(pending.body["errcode"], "M_UNAUTHORIZED", "{:?}", pending.body);
    // A tampered link confirms nothing; the real one does.
    let (status, _) = open(&link.replace("token=", "token=x")).await;
    assert_eq!(status, 400);
    let (status, page) = open(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("confirmed"), "{page}");
    let registered = register(email_auth(&sid, "secret-1", &session)).await.ok();
    assert_eq!(registered["user_id"], "@marie:localhost");

    // The rule gave Marie her tier and unit, and the audit log says so.
    let record = root.get("/_relais/admin/v1/users/@marie:localhost").await.ok();
    assert_eq!(record["record"]["tier"], "agent", "{record}");
    assert_eq!(record["record"]["unit"], "interior", "{record}");
    let log = root.get("/_relais/admin/v1/units/interior/audit").await.ok();
    assert!(log.to_string().contains("register_with_email"), "{log}");

    // She can sign in with her address instead of her user name; an unknown address gets the
    // answer of a wrong password.
    let by_email = |address: &'static str| {
        let client = client.clone();
        async move {
            client
                .post(
                    "/_matrix/client/v3/login",
                    json!({ "type": "m.login.password", "password": PASSWORD,
                            "identifier": { "type": "m.id.thirdparty", "medium": "email", "address": address } }),
                )
                .await
        }
    };
    assert_eq!(by_email("MARIE@interieur.gouv.fr").await.ok()["user_id"], "@marie:localhost");
    let unknown = by_email("nobody@interieur.gouv.fr").await.err(403, "M_FORBIDDEN");
    assert_eq!(unknown["error"], "invalid user name or password");

    // The address is on her account, once: nobody else can take it.
    let marie = login(&server, "marie").await;
    let listed = marie.get("/_matrix/client/v3/account/3pid").await.ok();
    assert_eq!(listed["threepids"][0]["address"], "marie@interieur.gouv.fr", "{listed}");
    assert_eq!(listed["threepids"][0]["medium"], "email");
    request_token(&client, path, "secret-2", "marie@interieur.gouv.fr", 1)
        .await
        .err(400, "M_THREEPID_IN_USE");
    let admin_view = root.get("/_synapse/admin/v2/users/@marie:localhost").await.ok();
    assert_eq!(admin_view["threepids"][0]["address"], "marie@interieur.gouv.fr");
    // An admin sets addresses through the Synapse admin API (synapse-admin's user page).
    let set = root
        .put(
            "/_synapse/admin/v2/users/@root:localhost",
            json!({ "threepids": [{ "medium": "email", "address": "root@interieur.gouv.fr" }] }),
        )
        .await
        .ok();
    assert_eq!(set["threepids"][0]["address"], "root@interieur.gouv.fr", "{set}");
    root.put(
        "/_synapse/admin/v2/users/@root:localhost",
        json!({ "threepids": [{ "medium": "email", "address": "marie@interieur.gouv.fr" }] }),
    )
    .await
    .err(400, "M_THREEPID_IN_USE");

    // She removes it, then adds it back (the link, then her password).
    marie
        .post(
            "/_matrix/client/v3/account/3pid/delete",
            json!({ "medium": "email", "address": "marie@interieur.gouv.fr" }),
        )
        .await
        .ok();
    let listed = marie.get("/_matrix/client/v3/account/3pid").await.ok();
    assert!(listed["threepids"].as_array().is_none_or(Vec::is_empty), "{listed}");
    let add_path = "/_matrix/client/v3/account/3pid/email/requestToken";
    let sid = request_token(&marie, add_path, "secret-3", "marie@interieur.gouv.fr", 1).await.ok()
        ["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = smtp.wait_for("marie@interieur.gouv.fr", 2).await;
    add_address(&marie, &sid, "secret-3").await.err(400, "M_THREEPID_AUTH_FAILED");
    assert_eq!(open(&mail.link("/_relais/email/validate").unwrap()).await.0, 200);
    add_address(&marie, &sid, "secret-3").await.ok();
    let listed = marie.get("/_matrix/client/v3/account/3pid").await.ok();
    assert_eq!(listed["threepids"][0]["address"], "marie@interieur.gouv.fr", "{listed}");

    // A forgotten password: a link to the account's address, then a new password, no token.
    let reset_path = "/_matrix/client/v3/account/password/email/requestToken";
    request_token(&client, reset_path, "secret-5", "nobody@interieur.gouv.fr", 1)
        .await
        .err(400, "M_THREEPID_NOT_FOUND");
    let sid = request_token(&client, reset_path, "secret-5", "marie@interieur.gouv.fr", 1)
        .await
        .ok()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mail = smtp.wait_for("marie@interieur.gouv.fr", 3).await;
    assert!(mail.data.contains("Reset your password"), "{}", mail.data);
    let first = client
        .post("/_matrix/client/v3/account/password", json!({ "new_password": "a-new-passphrase" }))
        .await;
    assert_eq!(first.status, 401, "{:?}", first.body);
    assert!(first.body["flows"].to_string().contains("m.login.email.identity"));
    let session = first.body["session"].as_str().unwrap().to_owned();
    let reset = |auth: Value| {
        let client = client.clone();
        async move {
            client
                .post(
                    "/_matrix/client/v3/account/password",
                    json!({ "new_password": "a-new-passphrase", "auth": auth }),
                )
                .await
        }
    };
    let pending = reset(email_auth(&sid, "secret-5", &session)).await;
    assert_eq!(pending.body["errcode"], "M_UNAUTHORIZED", "{:?}", pending.body);
    assert_eq!(open(&mail.link("/_relais/email/validate").unwrap()).await.0, 200);
    reset(email_auth(&sid, "secret-5", &session)).await.ok();
    let ended = marie.get("/_matrix/client/v3/account/whoami").await;
    assert_eq!(ended.status, 401, "the reset ends every session: {:?}", ended.body);
    let relogin = client
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "password": "a-new-passphrase",
                    "identifier": { "type": "m.id.user", "user": "marie" } }),
        )
        .await
        .ok();
    assert_eq!(relogin["user_id"], "@marie:localhost");

    // A deactivated account frees its address.
    root.post("/_synapse/admin/v1/deactivate/@marie:localhost", json!({})).await.ok();
    let sid = request_token(&client, path, "secret-4", "marie@interieur.gouv.fr", 1).await.ok();
    assert!(sid["sid"].is_string(), "{sid}");
}

#[tokio::test]
async fn a_guest_is_reminded_by_e_mail_too() {
    let smtp = SmtpSink::start();
    // Reminders 10 days ahead; the task runs every second.
    let server = start_with(
        &smtp,
        &[
            ("RELAIS_POLICY__GUEST_REMINDER_DAYS", "10"),
            ("RELAIS_POLICY__REMINDER_INTERVAL_SECS", "1"),
        ],
    );
    let mut root = server.client();
    root.register("root", PASSWORD).await;
    crate::policy::create_account(&root, "alice", "agent", "interior").await.ok();
    let alice = login(&server, "alice").await;
    crate::policy::create_account(&alice, "gus", "guest", "interior").await.ok();
    root.put(
        "/_synapse/admin/v2/users/@gus:localhost",
        json!({ "threepids": [{ "medium": "email", "address": "gus@partner.example" }] }),
    )
    .await
    .ok();
    // The account ends in 90 days: no reminder yet. Renewed to end in 5 days, it is due.
    let in_five_days = now_ms() + 5 * 24 * 3600 * 1000;
    alice
        .put(
            "/_relais/admin/v1/users/@gus:localhost",
            json!({ "expires_at_ms": in_five_days, "reason": "short mission" }),
        )
        .await
        .ok();
    let mail = smtp.wait_for("gus@partner.example", 1).await;
    assert!(mail.data.contains("Your guest account ends soon"), "{}", mail.data);
    assert!(mail.text().contains("@alice:localhost"), "the sponsor is named: {}", mail.text());
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[tokio::test]
async fn a_link_that_could_not_be_sent_is_sent_on_the_next_request() {
    let port = relais_tests::federation::free_port();
    let server = TestServer::start_with(&[
        ("RELAIS_EMAIL__SMTP_HOST", "127.0.0.1"),
        ("RELAIS_EMAIL__SMTP_PORT", port.to_string().as_str()),
        ("RELAIS_EMAIL__SMTP_SECURITY", "none"),
        ("RELAIS_EMAIL__TIMEOUT_SECS", "2"),
    ]);
    let client = server.client();
    let path = "/_matrix/client/v3/register/email/requestToken";
    // The mail server is down: the client is told, and nothing counts as sent.
    let failed = request_token(&client, path, "secret-1", "anne@example.org", 1).await;
    assert_eq!(failed.status, 500, "{:?}", failed.body);
    assert!(
        failed.body["error"].as_str().unwrap().contains("could not be sent"),
        "{:?}",
        failed.body
    );
    // It is back: the same attempt now sends the link.
    let smtp = SmtpSink::start_on(port);
    request_token(&client, path, "secret-1", "anne@example.org", 1).await.ok();
    let mail = smtp.wait_for("anne@example.org", 1).await;
    assert!(mail.link("/_relais/email/validate").is_some());
}

#[tokio::test]
async fn without_an_smtp_server_addresses_are_not_supported() {
    let server = TestServer::start();
    let client = server.client();
    request_token(&client, "/_matrix/client/v3/register/email/requestToken", "s", "a@b.fr", 1)
        .await
        .err(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED");
    let first = client
        .post("/_matrix/client/v3/register", json!({ "username": "x", "password": PASSWORD }))
        .await;
    assert!(!first.body["flows"].to_string().contains("email"), "{:?}", first.body);
}
