"""An echo bridge built on mautrix-python's AppService, the framework real bridges use.

The end-to-end tests run it against Relais. It joins rooms its bot is invited to, answers every
text message from a user outside its namespace with "echo: <text>" sent by a puppet of its
namespace, and appends what it receives to a JSON Lines log the test reads:
{"kind": "event", "event_id", "room_id", "sender", "body", "txn"}, {"kind": "edu", "type"} and
{"kind": "ping", "ms"} (the result of pinging itself through the homeserver at start-up).

Usage: echo_bridge.py <homeserver URL> <port> <as_token> <hs_token> <log file>
"""

import asyncio
import json
import logging
import sys

from mautrix.appservice import AppService
from mautrix.types import EventType, Membership, UserID

DOMAIN = "localhost"
BOT = "echobot"
PUPPET = UserID(f"@echo_puppet:{DOMAIN}")


async def main() -> None:
    server, port, as_token, hs_token, log_path = sys.argv[1:6]
    logging.basicConfig(level=logging.WARNING)
    log = open(log_path, "a", buffering=1)

    def record(entry: dict) -> None:
        log.write(json.dumps(entry) + "\n")

    appservice = AppService(
        server=server,
        domain=DOMAIN,
        as_token=as_token,
        hs_token=hs_token,
        bot_localpart=BOT,
        id="echo",
        ephemeral_events=True,
    )
    bot_mxid = UserID(f"@{BOT}:{DOMAIN}")

    @appservice.matrix_event_handler
    async def handle(event) -> None:
        if event.type in (EventType.TYPING, EventType.RECEIPT):
            record({"kind": "edu", "type": str(event.type), "room_id": str(event.room_id)})
            return
        if event.type == EventType.ROOM_MEMBER:
            if event.state_key == bot_mxid and event.content.membership == Membership.INVITE:
                await appservice.intent.join_room(event.room_id)
            return
        if event.type != EventType.ROOM_MESSAGE:
            return
        body = event.content.body
        record(
            {
                "kind": "event",
                "event_id": str(event.event_id),
                "room_id": str(event.room_id),
                "sender": str(event.sender),
                "body": body,
            }
        )
        if event.sender.startswith("@echo") or event.sender == bot_mxid:
            return
        puppet = appservice.intent.user(PUPPET)
        await puppet.ensure_registered()
        await puppet.ensure_joined(event.room_id, bot=appservice.intent)
        await puppet.send_text(event.room_id, f"echo: {body}")

    await appservice.start(host="127.0.0.1", port=int(port))
    record({"kind": "ping", "ms": await appservice.ping_self()})
    record({"kind": "ready"})
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
