"""The article's Python WebSocket client ("Python 客户端对比 / WebSocket 客户端").

Changed from the article, and nothing else:
  - the URL comes from argv instead of "ws://localhost:8000/ws"
    (e.g. ws://127.0.0.1:PORT/ws?name=NAME);
  - the message shape needed no change: the article already sends
    {"type": "message", "content": ...};
  - a bounded run: the article's `while True` loop ends after COUNT messages have
    been received (exit 0), or after TIMEOUT seconds (exit 1, a line on stderr);
  - each received message is printed as received, one per line, instead of
    print(f"收到: {data}") (the repr of the decoded dict), so that a test can check
    it. The article's json.loads() of every message is kept.
The 2 s pause between two sends is the article's.

usage: python ws_client.py URL [COUNT (default 3)] [TIMEOUT seconds (default 30)]
"""

import asyncio
import websockets
import json
import sys

async def websocket_client(uri, count):
    received = 0

    async with websockets.connect(uri) as websocket:
        # 发送消息
        message = {"type": "message", "content": "Hello Server"}
        await websocket.send(json.dumps(message))

        # 接收响应
        while True:
            response = await websocket.recv()
            data = json.loads(response)
            print(response, flush=True)
            received += 1
            if received >= count:
                return

            # 可以继续发送
            await asyncio.sleep(2)
            await websocket.send(json.dumps({
                "type": "message",
                "content": "Keep alive"
            }))


# 运行客户端
if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    uri = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    try:
        asyncio.run(asyncio.wait_for(websocket_client(uri, count), timeout))
    except asyncio.TimeoutError:
        print(f"ws_client: timed out after {timeout} s", file=sys.stderr)
        sys.exit(1)
