"""The article's Python SSE client ("Python 客户端对比 / SSE 客户端"), with aiohttp.

Changed from the article, and nothing else:
  - the URL comes from argv instead of "http://localhost:8000/stream"
    (e.g. http://127.0.0.1:PORT/stream?prompt=hi or http://127.0.0.1:PORT/events);
  - a bounded run: it stops after COUNT data lines (exit 0), at the article's
    [DONE] or at the end of the response (exit 0, as in the article), or after
    TIMEOUT seconds (exit 1, a line on stderr);
  - each data line is printed as the article's parser extracted it, one per line,
    instead of print(f"收到事件: {event}") / print(f"原始数据: {data}") (the repr of
    the decoded JSON, or the raw text) and print("流结束"); on [DONE] it prints
    "[DONE]" before it stops. The article's json.loads() served only those two
    prints and is gone with them.
The line-based parsing is the article's, unchanged, with its known faults: every
`data: ` line is taken as a whole event (a multi-line data field comes out as
several events, and lines are stripped of their spaces), `id:`, `event:` and
`retry:` are ignored, `data:` without a space is missed, and nothing reconnects.

usage: python sse_client.py URL [COUNT (default 1000)] [TIMEOUT seconds (default 30)]
"""

import asyncio
import aiohttp
import sys

async def sse_client(url, count):
    printed = 0

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            async for line in response.content:
                line = line.decode('utf-8').strip()

                if not line:
                    continue

                if line.startswith('data: '):
                    data = line[6:]  # 去掉 "data: " 前缀

                    if data == '[DONE]':
                        print("[DONE]", flush=True)
                        break

                    print(data, flush=True)
                    printed += 1
                    if printed >= count:
                        break


# 运行客户端
if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    url = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    try:
        asyncio.run(asyncio.wait_for(sse_client(url, count), timeout))
    except asyncio.TimeoutError:
        print(f"sse_client: timed out after {timeout} s", file=sys.stderr)
        sys.exit(1)
