"""relais-policy-service guarding Synapse: the scenario of scripts/interop/synapse-policy.sh.

Only the Python standard library; exits non-zero at the first failed check.
"""
import argparse, hashlib, hmac, json, subprocess, sys, time, urllib.error, urllib.parse, urllib.request

parser = argparse.ArgumentParser()
for name in ("--synapse", "--service-bin", "--service-config", "--service-url", "--work"):
    parser.add_argument(name, required=True)
args = parser.parse_args()
AS_TOKEN = "as-interop-0123456789abcdef"
SECRET = b"interop-shared-secret"


def call(method, path, body=None, token=None, base=None):
    request = urllib.request.Request((base or args.synapse) + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def check(what, condition, detail=""):
    print(f"[interop] {'ok  ' if condition else 'FAIL'} {what} {detail}", flush=True)
    if not condition:
        sys.exit(1)


def register(user, admin=False):
    """A Synapse account through the shared-secret registration API; its access token."""
    _, nonce = call("GET", "/_synapse/admin/v1/register")
    parts = [nonce["nonce"], user, "pw-pw-pw-pw", "admin" if admin else "notadmin"]
    mac = hmac.new(SECRET, "\x00".join(parts).encode(), hashlib.sha1).hexdigest()
    body = {"nonce": nonce["nonce"], "username": user, "password": "pw-pw-pw-pw", "admin": admin,
            "mac": mac}
    status, answer = call("POST", "/_synapse/admin/v1/register", body)
    check(f"register @{user}", status == 200, answer)
    return answer["access_token"]


def enc(value):
    return urllib.parse.quote(value, safe="")


root = register("root", admin=True)
alice, bob, gus = register("alice"), register("bob"), register("gus")

# The service's bot must be a Synapse admin to read rooms through the admin API.
call("POST", "/_matrix/client/v3/register",
     {"type": "m.login.application_service", "username": "relais-policy", "inhibit_login": True},
     AS_TOKEN)
status, answer = call("PUT", "/_synapse/admin/v2/users/" + enc("@relais-policy:localhost"),
                      {"admin": True}, root)
check("the policy bot is a Synapse admin", status in (200, 201), answer)

service = subprocess.Popen([args.service_bin, "--config", args.service_config, "serve"],
                           stderr=open(f"{args.work}/service.log", "w"))
try:
    for _ in range(100):
        try:
            if urllib.request.urlopen(args.service_url + "/health", timeout=2).status == 200:
                break
        except Exception:
            time.sleep(0.3)
    check("the service created the unit rooms on Synapse and loaded the directory",
          urllib.request.urlopen(args.service_url + "/health", timeout=2).status == 200)
    status, unit = call("GET", "/_matrix/client/v3/directory/room/" + enc("#relais-unit-interior:localhost"))
    check("#relais-unit-interior:localhost exists", status == 200, unit)
    unit_room = unit["room_id"]

    # The directory: on Synapse nothing else writes it, so the operator records the users with
    # the service's command line (the bot writes each record and its audit entry).
    members = [["@alice:localhost", "--tier", "agent", "--unit", "interior"],
               ["@bob:localhost", "--tier", "public", "--unit", "interior"],
               ["@gus:localhost", "--tier", "guest", "--unit", "interior",
                "--sponsor", "@alice:localhost", "--expires-in-days", "30"]]
    for member in members:
        done = subprocess.run([args.service_bin, "--config", args.service_config, "member", *member],
                              capture_output=True, text=True)
        check(f"record of {member[0]}", done.returncode == 0, done.stderr.strip())
    status, log = call("GET", f"/_matrix/client/v3/rooms/{enc(unit_room)}/messages?dir=b&limit=20",
                       token=AS_TOKEN)
    audited = [e for e in log.get("chunk", []) if e["type"] == "fr.relais.audit"]
    check("each record is in the unit's audit log", len(audited) == 3, [e["content"] for e in audited])

    # An agent's room is for agents (no class event: `agents`).
    room = None
    for _ in range(50):
        status, answer = call("POST", "/_matrix/client/v3/createRoom", {"name": "Crisis cell"}, alice)
        if status == 200:
            room = answer["room_id"]
            break
        time.sleep(0.2)  # the records reach the service in Synapse's next transaction
    check("an agent creates a room (user_may_create_room allowed)", room is not None, answer)
    status, denied = call("POST", f"/_matrix/client/v3/rooms/{enc(room)}/invite", {"user_id": "@bob:localhost"}, alice)
    check("inviting a public-sector agent into an agents room is refused", status == 403, denied)
    check("with the rule and what to do", "M1" in denied.get("error", "") and "open the room" in denied["error"], denied)
    status, answer = call("PUT", f"/_matrix/client/v3/rooms/{enc(room)}/state/fr.relais.access/", {"class": "public"}, alice)
    check("the agent opens the room to public-sector agents", status == 200, answer)
    status, answer = call("POST", f"/_matrix/client/v3/rooms/{enc(room)}/invite", {"user_id": "@bob:localhost"}, alice)
    check("now the invite goes through", status == 200, answer)
    status, answer = call("POST", f"/_matrix/client/v3/rooms/{enc(room)}/join", {}, bob)
    check("and the public-sector agent joins (user_may_join_room allowed)", status == 200, answer)
    status, denied = call("POST", f"/_matrix/client/v3/rooms/{enc(room)}/invite", {"user_id": "@gus:localhost"}, bob)
    check("a public-sector agent cannot invite a guest (M3)", status == 403 and "M3" in denied.get("error", ""), denied)
    status, answer = call("PUT", f"/_matrix/client/v3/rooms/{enc(room)}/send/m.room.message/t1",
                          {"msgtype": "m.text", "body": "messages are never refused"}, bob)
    check("messages pass (check_event_for_spam allowed)", status == 200, answer)
    status, denied = call("POST", "/_matrix/client/v3/createRoom", {"name": "guest room"}, gus)
    check("a guest creates no room (W2)", status == 403 and "W2" in denied.get("error", ""), denied)
    print("[interop] policy interop: all checks passed", flush=True)
finally:
    service.terminate()
    service.wait(timeout=10)
