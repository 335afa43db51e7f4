//! Workspaces from templates and their delegated administration (close, lock, transfer, recover,
//! member export), and the Synapse-compatible admin API scoped by delegation, through the real
//! binary with the policy enabled.

use relais_tests::{Client, TestServer, enc};
use serde_json::{Value, json};

use super::policy::{login, start};

const BOT: &str = "@relais-policy:localhost";

async fn create_account(admin: &Client, username: &str, tier: &str, unit: &str) {
    super::policy::create_account(admin, username, tier, unit).await.ok();
}

/// The root, an admin of each of two units, and members: alice (agent, admin of the interior),
/// bob (agent, interior), pat (public, interior), carol (agent, admin of culture).
async fn populate(server: &TestServer) -> (Client, Client, Client, Client, Client) {
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    for (user, tier, unit) in [
        ("alice", "agent", "interior"),
        ("bob", "agent", "interior"),
        ("pat", "public", "interior"),
        ("carol", "agent", "culture"),
    ] {
        create_account(&root, user, tier, unit).await;
    }
    for (user, unit) in [("alice", "interior"), ("carol", "culture")] {
        root.put(&format!("/_relais/admin/v1/units/{unit}/admins/@{user}:localhost"), json!({}))
            .await
            .ok();
    }
    let alice = login(server, "alice").await;
    let bob = login(server, "bob").await;
    let pat = login(server, "pat").await;
    let carol = login(server, "carol").await;
    (root, alice, bob, pat, carol)
}

async fn state(client: &Client, room: &str, kind: &str, key: &str) -> Value {
    client
        .get(&format!("/_matrix/client/v3/rooms/{}/state/{kind}/{}", enc(room), enc(key)))
        .await
        .ok()
}

async fn invite_and_join(inviter: &Client, invitee: &Client, user: &str, room: &str) {
    inviter
        .post(&format!("/_matrix/client/v3/rooms/{}/invite", enc(room)), json!({ "user_id": user }))
        .await
        .ok();
    invitee.join(room).await;
}

async fn post_message(client: &Client, room: &str, txn: &str) -> u16 {
    client
        .put(
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", enc(room)),
            json!({ "msgtype": "m.text", "body": "hello" }),
        )
        .await
        .status
}

async fn audit_actions(client: &Client, unit: &str) -> Vec<String> {
    let log = client.get(&format!("/_relais/admin/v1/units/{unit}/audit")).await.ok();
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

fn workspace_path(space: &str, action: &str) -> String {
    format!("/_relais/admin/v1/workspaces/{}/{action}", enc(space))
}

#[tokio::test]
async fn workspaces_from_templates_and_their_administration() {
    let server = start();
    let (root, alice, bob, pat, carol) = populate(&server).await;

    // The default template; a public agent creates no workspace (W1).
    let templates = bob.get("/_relais/admin/v1/workspaces/templates").await.ok();
    assert_eq!(templates["templates"][0]["id"], "standard");
    let denied = pat
        .post("/_relais/admin/v1/workspaces", json!({ "name": "Nope" }))
        .await
        .err(403, "M_FORBIDDEN");
    assert!(denied["error"].as_str().unwrap().contains("W1"), "{denied}");
    let created = bob
        .post(
            "/_relais/admin/v1/workspaces",
            json!({ "name": "Flood response", "class": "public", "reason": "spring floods" }),
        )
        .await
        .ok();
    let space = created["room_id"].as_str().unwrap().to_owned();
    assert_eq!(created["unit"], "interior");
    let rooms: Vec<(String, String)> = created["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["name"].as_str().unwrap().to_owned(), r["room_id"].as_str().unwrap().to_owned())
        })
        .collect();
    let names: Vec<&str> = rooms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Discussion", "Announcements", "Documents", "Tasks"]);

    // A space owned by the unit, the bot an additional creator, the rooms linked both ways.
    let create = state(&bob, &space, "m.room.create", "").await;
    assert_eq!(create["type"], "m.space");
    assert!(create["additional_creators"].as_array().unwrap().contains(&json!(BOT)), "{create}");
    assert_eq!(state(&bob, &space, "fr.relais.workspace", "").await["unit"], "interior");
    assert_eq!(state(&bob, &space, "fr.relais.access", "").await["class"], "public");
    for (_, room) in &rooms {
        assert!(state(&bob, &space, "m.space.child", room).await["via"].is_array());
        assert!(state(&bob, room, "m.space.parent", &space).await["via"].is_array());
        assert_eq!(state(&bob, room, "fr.relais.access", "").await["class"], "public");
        let room_create = state(&bob, room, "m.room.create", "").await;
        assert!(room_create["additional_creators"].as_array().unwrap().contains(&json!(BOT)));
    }
    let (discussion, announcements) = (&rooms[0].1, &rooms[1].1);

    // Pat (public) joins; in Announcements only moderators post.
    invite_and_join(&bob, &pat, "@pat:localhost", &space).await;
    invite_and_join(&bob, &pat, "@pat:localhost", discussion).await;
    invite_and_join(&bob, &pat, "@pat:localhost", announcements).await;
    assert_eq!(post_message(&pat, discussion, "t1").await, 200);
    assert_eq!(post_message(&pat, announcements, "t2").await, 403);
    assert_eq!(post_message(&bob, announcements, "t3").await, 200);

    // Lock (read-only): only a delegated admin whose scope covers the unit.
    pat.post(&workspace_path(&space, "lock"), json!({})).await.err(403, "M_FORBIDDEN");
    carol.post(&workspace_path(&space, "lock"), json!({})).await.err(403, "M_FORBIDDEN");
    alice.post(&workspace_path(&space, "lock"), json!({ "reason": "inquiry" })).await.ok();
    assert_eq!(post_message(&pat, discussion, "t4").await, 403);
    assert_eq!(state(&bob, &space, "fr.relais.workspace", "").await["status"], "locked");

    // Close to `agents` (P3): Pat is removed from the space and its rooms, with the reason.
    bob.post(&workspace_path(&space, "close"), json!({ "class": "agents" }))
        .await
        .err(403, "M_FORBIDDEN");
    let closed = alice
        .post(&workspace_path(&space, "close"), json!({ "class": "agents", "reason": "sensitive" }))
        .await
        .ok();
    let removed: Vec<&str> = closed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert!(
        removed.contains(&space.as_str()) && removed.contains(&discussion.as_str()),
        "{closed}"
    );
    let member = state(&bob, discussion, "m.room.member", "@pat:localhost").await;
    assert_eq!(member["membership"], "leave");
    assert!(member["reason"].as_str().unwrap().contains("P3"), "{member}");
    assert_eq!(state(&bob, discussion, "fr.relais.access", "").await["class"], "agents");
    assert_eq!(state(&bob, &space, "m.room.member", "@bob:localhost").await["membership"], "join");
    let opened = alice
        .post(&workspace_path(&space, "close"), json!({ "class": "open" }))
        .await
        .err(403, "M_FORBIDDEN");
    assert!(opened["error"].as_str().unwrap().contains("P3"), "{opened}");

    // Transfer needs scope over both units: the root moves it to culture.
    alice
        .post(&workspace_path(&space, "transfer"), json!({ "unit": "culture" }))
        .await
        .err(403, "M_FORBIDDEN");
    root.post(&workspace_path(&space, "transfer"), json!({ "unit": "culture", "reason": "reorg" }))
        .await
        .ok();
    assert_eq!(state(&bob, &space, "fr.relais.workspace", "").await["unit"], "culture");

    // Its admin gone, culture's admin recovers it through the bot.
    bob.post(&format!("/_matrix/client/v3/rooms/{}/leave", enc(&space)), json!({})).await.ok();
    alice.post(&workspace_path(&space, "recover"), json!({})).await.err(403, "M_FORBIDDEN");
    carol.post(&workspace_path(&space, "recover"), json!({ "reason": "orphaned" })).await.ok();
    carol.join(&space).await;
    let levels = state(&carol, &space, "m.room.power_levels", "").await;
    assert_eq!(levels["users"]["@carol:localhost"], 100, "{levels}");

    // The member list, exportable as CSV.
    let members = carol.get(&workspace_path(&space, "members")).await.ok();
    let users: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(users.contains(&"@carol:localhost") && users.contains(&"@bob:localhost"), "{users:?}");
    let csv = carol.get(&format!("{}?format=csv", workspace_path(&space, "members"))).await;
    assert_eq!(csv.status, 200);

    // Both units' audit logs hold what happened to the workspace.
    let interior = audit_actions(&alice, "interior").await;
    for action in ["create_workspace", "lock_workspace", "close_workspace", "transfer_workspace"] {
        assert!(interior.iter().any(|a| a == action), "{action} missing: {interior:?}");
    }
    let culture = audit_actions(&carol, "culture").await;
    for action in ["transfer_workspace", "recover_workspace", "export_members"] {
        assert!(culture.iter().any(|a| a == action), "{action} missing: {culture:?}");
    }
}

fn names(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn synapse_admin_api_scoped_by_delegation() {
    let server = start();
    let (root, alice, bob, _pat, carol) = populate(&server).await;
    let interior_room = bob.create_room(json!({ "name": "Interior room" })).await;
    let culture_room = carol.create_room(json!({ "name": "Culture room" })).await;

    // No authentication needed for the version; others get 403 outside any delegation.
    let version = server.client().get("/_synapse/admin/v1/server_version").await.ok();
    assert!(version["server_version"].as_str().unwrap().starts_with("relais"));
    bob.get("/_synapse/admin/v2/users").await.err(403, "M_FORBIDDEN");
    bob.get("/_synapse/admin/v1/rooms").await.err(403, "M_FORBIDDEN");

    // The server admin sees every account; a delegated admin their units' only.
    let all = names(&root.get("/_synapse/admin/v2/users").await.ok());
    assert!(
        all.contains(&"@carol:localhost".to_owned()) && all.contains(&"@bob:localhost".to_owned())
    );
    let scoped = alice.get("/_synapse/admin/v2/users").await.ok();
    let mut seen = names(&scoped);
    seen.sort();
    assert_eq!(seen, ["@alice:localhost", "@bob:localhost", "@pat:localhost"], "{scoped}");
    assert_eq!(scoped["total"], 3);
    let page = alice.get("/_synapse/admin/v2/users?from=0&limit=2").await.ok();
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_token"], "2");
    let by_name = alice.get("/_synapse/admin/v2/users?name=pa").await.ok();
    assert_eq!(names(&by_name), ["@pat:localhost"]);
    let bob_json = alice.get("/_synapse/admin/v2/users/@bob:localhost").await.ok();
    assert_eq!(bob_json["name"], "@bob:localhost");
    assert_eq!(bob_json["admin"], false);
    assert_eq!(bob_json["fr.relais.tier"], "agent");
    alice.get("/_synapse/admin/v2/users/@carol:localhost").await.err(403, "M_FORBIDDEN");

    // Creating an account: the caller's unit, audited; outside the scope refused.
    let created = alice
        .put(
            "/_synapse/admin/v2/users/@dave:localhost",
            json!({ "password": "pw-pw-pw-pw", "displayname": "Dave" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["fr.relais.unit"], "interior");
    assert_eq!(created.body["displayname"], "Dave");
    login(&server, "dave").await;
    alice
        .put("/_synapse/admin/v2/users/@carol:localhost", json!({ "displayname": "C" }))
        .await
        .err(403, "M_FORBIDDEN");
    alice
        .put("/_synapse/admin/v2/users/@bob:localhost", json!({ "admin": true }))
        .await
        .err(403, "M_FORBIDDEN");
    let locked =
        alice.put("/_synapse/admin/v2/users/@dave:localhost", json!({ "locked": true })).await.ok();
    assert_eq!(locked["locked"], true);
    alice
        .post("/_synapse/admin/v1/deactivate/@dave:localhost", json!({ "erase": false }))
        .await
        .ok();
    alice
        .post("/_synapse/admin/v1/deactivate/@carol:localhost", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    let hidden = names(&alice.get("/_synapse/admin/v2/users").await.ok());
    assert!(
        !hidden.contains(&"@dave:localhost".to_owned()),
        "deactivated users are hidden by default"
    );
    let shown =
        alice.get("/_synapse/admin/v2/users?deactivated=true&locked=true&name=dave").await.ok();
    assert_eq!(shown["users"][0]["deactivated"], true, "{shown}");
    let interior = audit_actions(&alice, "interior").await;
    assert!(interior.iter().any(|a| a == "create_account"), "{interior:?}");
    assert!(interior.iter().filter(|a| *a == "change_user").count() >= 2, "{interior:?}");

    // A server admin outside the directory creates accounts in the root unit, and grants admin.
    let eve = root
        .put(
            "/_synapse/admin/v2/users/@eve:localhost",
            json!({ "password": "pw-pw-pw-pw", "admin": true }),
        )
        .await;
    assert_eq!(eve.status, 201, "{}", eve.body);
    assert_eq!(eve.body["fr.relais.unit"], "state");
    assert_eq!(eve.body["admin"], true);

    // Rooms: the server admin sees both, the interior's admin only the interior's.
    let rooms = |list: &Value| -> Vec<String> {
        list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all_rooms = root.get("/_synapse/admin/v1/rooms").await.ok();
    assert!(
        rooms(&all_rooms).contains(&interior_room) && rooms(&all_rooms).contains(&culture_room)
    );
    let scoped_rooms = alice.get("/_synapse/admin/v1/rooms").await.ok();
    assert!(rooms(&scoped_rooms).contains(&interior_room), "{scoped_rooms}");
    assert!(!rooms(&scoped_rooms).contains(&culture_room), "{scoped_rooms}");
    let searched = alice.get("/_synapse/admin/v1/rooms?search_term=interior%20room").await.ok();
    assert_eq!(searched["total_rooms"], 1, "{searched}");
    assert_eq!(searched["rooms"][0]["name"], "Interior room");
}
