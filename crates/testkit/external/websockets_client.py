"""A chat round trip with Python's `websockets` library, a client this project did not write.

Usage: python3 websockets_client.py ws://127.0.0.1:PORT/ws

Connects as a unique name, expects the welcome, sends one chat message, expects it
back with the next seq, checks that a ping is answered with the same payload, and
closes with 1000. Prints one line of JSON describing what it saw; exits 0 only if
every check held, so the Rust test kit can run it against every server.
"""

import asyncio
import json
import sys
import uuid

import websockets


async def round_trip(url: str) -> dict:
    name = "py-" + uuid.uuid4().hex[:8]
    content = "hello from websockets " + uuid.uuid4().hex
    async with websockets.connect(f"{url}?name={name}", open_timeout=5) as socket:
        welcome = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert welcome["type"] == "welcome", welcome
        assert welcome["you"] == name, welcome
        await socket.send(json.dumps({"type": "message", "content": content}))
        while True:
            received = json.loads(await asyncio.wait_for(socket.recv(), 5))
            if received["type"] == "message" and received["content"] == content:
                break
        assert received["from"] == name, received
        assert received["seq"] > welcome["seq"], (received, welcome)
        # `ping` resolves when the pong with the same payload arrives.
        latency = await asyncio.wait_for(await socket.ping(b"py-ping"), 5)
        await socket.close(code=1000, reason="done")
        return {
            "welcome": welcome,
            "echoed_seq": received["seq"],
            "pong_seconds": latency,
            "close_code": socket.close_code,
        }


def main() -> int:
    try:
        result = asyncio.run(round_trip(sys.argv[1]))
    except Exception as error:  # report any failure as one line, for the test kit
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0 if result["close_code"] == 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
