#!/usr/bin/env python3
"""The federation interoperability scenario between a Relais and another homeserver.

Both directions: a user of the other server joins a Relais room, a Relais user joins a room of the
other server; messages go both ways; the room state (name, power levels, joined members) must be
the same on both servers. Only the Client-Server API is used, through the standard library.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class Client:
    def __init__(self, base, name):
        self.base, self.name, self.token, self.user_id = base.rstrip("/"), name, None, None

    def call(self, method, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        answer = json.loads(payload or b"{}")
        if expect is not None and status != expect:
            raise SystemExit(f"[{self.name}] {method} {path}: expected {expect}, got {status}: {answer}")
        return answer

    def register(self, username):
        body = {"username": username, "password": "interop password 1",
                "auth": {"type": "m.login.dummy"}, "inhibit_login": False}
        answer = self.call("POST", "/_matrix/client/v3/register", body)
        self.token, self.user_id = answer["access_token"], answer["user_id"]
        return self

    def say(self, room, text):
        txn = f"t{time.monotonic_ns()}"
        path = f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn}"
        return self.call("PUT", path, {"msgtype": "m.text", "body": text})["event_id"]

    def wait_for(self, room, predicate, what, timeout=60):
        deadline, since = time.time() + timeout, None
        while time.time() < deadline:
            path = "/_matrix/client/v3/sync?timeout=2000" + (f"&since={q(since)}" if since else "")
            answer = self.call("GET", path)
            joined = answer.get("rooms", {}).get("join", {}).get(room, {})
            for event in joined.get("timeline", {}).get("events", []):
                if predicate(event):
                    return event
            since = answer["next_batch"]
        raise SystemExit(f"[{self.name}] timed out waiting for {what}")

    def state(self, room, kind, key=""):
        return self.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/state/{kind}/{q(key)}")

    def members(self, room):
        return sorted(self.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/joined_members")["joined"])


def q(value):
    return urllib.parse.quote(value, safe="")


def check(label, left, right):
    if left != right:
        raise SystemExit(f"MISMATCH {label}:\n  one side:   {left}\n  other side: {right}")
    print(f"  same on both servers: {label}")


def scenario(owner, owner_server, guest, label):
    """`guest` (of the other server) joins a room of `owner`, both talk, state is compared."""
    print(f"{label}: {guest.user_id} joins a room of {owner.user_id}")
    room = owner.call("POST", "/_matrix/client/v3/createRoom",
                      {"preset": "public_chat", "name": f"Interop {label}"})["room_id"]
    owner.say(room, f"welcome ({label})")
    started = time.time()
    guest.call("POST", f"/_matrix/client/v3/join/{q(room)}?server_name={q(owner_server)}&via={q(owner_server)}", {})
    print(f"  joined in {time.time() - started:.2f} s")
    owner.wait_for(room, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == guest.user_id,
                   "the join on the owner's server")
    owner.say(room, f"hello from {owner.name}")
    guest.wait_for(room, lambda e: e.get("content", {}).get("body") == f"hello from {owner.name}",
                   f"{owner.name}'s message")
    print(f"  {guest.name} received {owner.name}'s message")
    guest.say(room, f"hello from {guest.name}")
    owner.wait_for(room, lambda e: e.get("content", {}).get("body") == f"hello from {guest.name}",
                   f"{guest.name}'s message")
    print(f"  {owner.name} received {guest.name}'s message")
    owner.call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.name/", {"name": f"Renamed {label}"})
    deadline = time.time() + 60
    while guest.state(room, "m.room.name").get("name") != f"Renamed {label}":
        if time.time() > deadline:
            raise SystemExit(f"the new name never reached {guest.name}")
        time.sleep(0.3)
    check("room name", owner.state(room, "m.room.name"), guest.state(room, "m.room.name"))
    check("power levels", owner.state(room, "m.room.power_levels"), guest.state(room, "m.room.power_levels"))
    check("join rules", owner.state(room, "m.room.join_rules"), guest.state(room, "m.room.join_rules"))
    check("joined members", owner.members(room), guest.members(room))


def invites(owner, guest, label):
    """`owner` invites `guest` (of the other server) to a private room; the invite shows in the
    guest's sync with the room's name, the guest joins, and they talk."""
    print(f"{label}: {owner.user_id} invites {guest.user_id}")
    room = owner.call("POST", "/_matrix/client/v3/createRoom",
                      {"preset": "private_chat", "name": f"Invite {label}"})["room_id"]
    owner.call("POST", f"/_matrix/client/v3/rooms/{q(room)}/invite", {"user_id": guest.user_id})
    deadline, since, invite = time.time() + 60, None, None
    while invite is None:
        if time.time() > deadline:
            raise SystemExit(f"[{guest.name}] the invite never arrived")
        path = "/_matrix/client/v3/sync?timeout=2000" + (f"&since={q(since)}" if since else "")
        answer = guest.call("GET", path)
        invite = answer.get("rooms", {}).get("invite", {}).get(room)
        since = answer["next_batch"]
    names = [e.get("content", {}).get("name") for e in invite["invite_state"]["events"]
             if e.get("type") == "m.room.name"]
    if names != [f"Invite {label}"]:
        raise SystemExit(f"[{guest.name}] the invite does not show the room's name: {invite}")
    print(f"  {guest.name}'s sync shows the invite with the room's name")
    guest.call("POST", f"/_matrix/client/v3/join/{q(room)}", {})
    guest.say(room, f"thanks for the invite ({label})")
    owner.wait_for(room, lambda e: e.get("content", {}).get("body") == f"thanks for the invite ({label})",
                   "the invited user's message")
    print(f"  {guest.name} joined through the invite and talked")


def versions(owner, owner_server, guest):
    """`guest` joins rooms of every version `owner` creates, and talks in each."""
    for version in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]:
        room = owner.call("POST", "/_matrix/client/v3/createRoom",
                          {"preset": "public_chat", "room_version": version})["room_id"]
        guest.call("POST", f"/_matrix/client/v3/join/{q(room)}?via={q(owner_server)}", {})
        guest.say(room, f"hello in v{version}")
        owner.wait_for(room, lambda e: e.get("content", {}).get("body") == f"hello in v{version}",
                       f"the message in a v{version} room")
        print(f"  room version {version}: {guest.name} joined a {owner.name} room, its message arrived")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--relais", required=True)
    parser.add_argument("--relais-name", required=True)
    parser.add_argument("--synapse", required=True)
    parser.add_argument("--synapse-name", required=True)
    args = parser.parse_args()
    suffix = str(int(time.time()))
    relais = Client(args.relais, "relais").register(f"ana{suffix}")
    synapse = Client(args.synapse, "synapse").register(f"bruno{suffix}")
    scenario(relais, args.relais_name, synapse, "synapse-user-joins-relais-room")
    scenario(synapse, args.synapse_name, relais, "relais-user-joins-synapse-room")
    invites(synapse, relais, "synapse-invites-relais")
    invites(relais, synapse, "relais-invites-synapse")
    print("room versions: a Relais user joins Synapse rooms of versions 1 to 12")
    versions(synapse, args.synapse_name, relais)
    print("interop: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
