"""permessage-deflate with Python's `websockets` library, an implementation of RFC 7692
this project did not write, against a server's /echo.

Usage: python3 websockets_deflate.py ws://127.0.0.1:PORT/echo

Offers the extension (the library's default), sends seven messages that compress well,
badly or not at all (empty, one byte, repeated text, random bytes, JSON, 1 MiB of text,
non-ASCII text), each twice so that a shared window is used, and checks that every echo
is the message sent. Prints one line of JSON with the server's Sec-WebSocket-Extensions
answer and the count echoed; exits 0 only if every echo matched.
"""

import asyncio
import json
import os
import sys

import websockets


MESSAGES = [
    "",
    "a",
    "the same words again and again " * 3000,
    os.urandom(64 * 1024),
    json.dumps({"type": "message", "seq": 1, "from": "py", "content": "hello"}),
    "x" * (1 << 20),
    "permessage-deflate: 压缩 ✓ " * 50,
]


async def echo_all(url: str) -> dict:
    async with websockets.connect(
        url, compression="deflate", max_size=None, open_timeout=5
    ) as socket:
        extensions = socket.response.headers.get("Sec-WebSocket-Extensions")
        echoed = 0
        for message in MESSAGES:
            for _ in range(2):
                await socket.send(message)
                answer = await asyncio.wait_for(socket.recv(), 10)
                if answer != message:
                    raise AssertionError(
                        f"message {echoed}: sent {len(message)} {type(message).__name__}, "
                        f"got {len(answer)} {type(answer).__name__}"
                    )
            echoed += 1
        await socket.close(code=1000)
        return {"extensions": extensions, "echoed": echoed, "close_code": socket.close_code}


def main() -> int:
    try:
        result = asyncio.run(echo_all(sys.argv[1]))
    except Exception as error:  # one line for the test kit
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0 if result["close_code"] == 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
