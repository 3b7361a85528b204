"""Peer server for the benchmark: FastAPI on uvicorn, after the article's
"FastAPI 实现" (its "WebSocket 实现" and "SSE 实现" apps), made into one app that
serves the load generator's routes.

Adaptations from the article, each needed by the benchmark (nothing else changed):

 1. One app instead of two: the article's WebSocket app and SSE app both run on
    port 8000; the benchmark needs /ws, /events, /echo and /stream from one
    process. The two HTML pages at "/" are left out: both apps claim "/", and no
    scenario loads them.
 2. main() instead of `uvicorn.run(app, host="0.0.0.0", port=8000)`: it parses
    --addr / --heartbeat / --token-interval-ms (argparse; an unknown flag is an
    error), binds the socket itself so that port 0 works, prints the
    `listening on http://IP:PORT` line the load generator waits for, and runs one
    uvicorn worker with log_level="warning" and no access log (uvicorn logs every
    request and connection at "info": that would be logging per connection).
    uvloop, httptools and websockets (uvicorn's "websockets-sansio" protocol, its
    default when websockets is installed) are named explicitly so that the run is
    the same everywhere.
 3. --heartbeat sets uvicorn's own WebSocket keepalive ping (ws_ping_interval,
    20 s by default; 0 turns it off). The article's FastAPI code has no heartbeat
    of its own; the bench passes 3600, so no ping is sent during a run.
 4. SIGTERM/SIGINT: uvicorn re-raises the signal after its graceful shutdown (so
    the process would die by SIGTERM, exit status 143) and waits for every open
    response to end (an /events stream never does). PeerServer catches the two
    signals itself, ends the /events streams (a None in each subscriber's queue)
    and exits 0; a 1 s graceful-shutdown timeout is the backstop.
 5. /ws: the article's endpoint answers each message to its sender only
    ({"type":"echo","content":"收到: ..."}). The benchmark's chat needs a welcome on
    open and a broadcast to every /ws client and every /events subscriber of
    {"type":"message","seq":N,"from":NAME,"content":CONTENT}. The article's
    receive loop, json.loads and try/except/finally are kept; the broadcast is the
    FastAPI docs' ConnectionManager loop (`for connection in ...: await
    connection.send_text(message)`). Serialized once per broadcast with
    json.dumps(separators=(",", ":"), ensure_ascii=False) -- the encoding of the
    article's send_json, which would encode again for every receiver -- then sent
    with send_text. JSON that is not a {"type":"message"} object is ignored
    instead of ending the connection; a text that is not JSON too.
 6. Error handling in /ws: the article prints every exception (a client that
    leaves is one), i.e. a print per connection, and calls websocket.close() in
    `finally` even after the client has gone, which raises in uvicorn and logs a
    traceback per connection. The print is dropped and close() is called only
    while the client is still connected (a binary frame on /ws still ends the
    connection, as in the article).
 7. /echo: the article's handler wraps each reply as {"type":"echo",...}; the
    echo scenario needs the message back unchanged, text or binary, so /echo
    sends back what it received.
 8. /events: the article's FastAPI SSE app only has the one-shot /stream; the
    SSE broadcast comes from the article's Node.js SSE server (a set of clients
    that every message is written to). Here the set holds one asyncio.Queue per
    subscriber, filled by the /ws broadcast with the SSE frame built once per
    message ("id: SEQ\ndata: JSON\n\n"). The stream opens with "retry: 3000\n\n"
    instead of the Node server's "connected" event; the subscriber is registered
    before that line is yielded. No timer broadcast (the article's setInterval).
 9. /stream: the article's generate_events() with its five canned messages,
    tokenized (each Chinese character, and "SSE", is one token: 32 tokens) and
    sent as plain `data: TOKEN` (the article sends a JSON object per message);
    the sleep is --token-interval-ms instead of 1 s, skipped when 0. The prompt
    is accepted and ignored, as the article's stream_events() has no prompt.
    Same response headers as the article.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import socket
import sys

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.websockets import WebSocketState

app = FastAPI()

# The article's generate_events() messages, one token per character ("SSE" whole).
MESSAGES = [
    "欢迎使用 SSE",
    "这是第一条消息",
    "这是第二条消息",
    "这是第三条消息",
    "流式输出结束",
]
TOKENS = [token for msg in MESSAGES for token in re.findall(r"[A-Za-z]+|\S", msg)]

# Set by main() from --token-interval-ms.
TOKEN_INTERVAL = 0.02

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}

chat_clients: set[WebSocket] = set()
event_queues: set[asyncio.Queue] = set()
seq = 0


def dumps(value) -> str:
    # What Starlette's send_json does, done once per broadcast.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket):
    global seq
    name = websocket.query_params.get("name", "")
    await websocket.accept()
    await websocket.send_text(dumps({"type": "welcome", "name": name}))
    chat_clients.add(websocket)
    try:
        while True:
            # 接收客户端消息
            data = await websocket.receive_text()
            try:
                message = json.loads(data)
            except ValueError:
                continue
            if type(message) is not dict or message.get("type") != "message":
                continue

            # 处理消息
            seq += 1
            response = dumps(
                {
                    "type": "message",
                    "seq": seq,
                    "from": name,
                    "content": message.get("content", ""),
                }
            )

            # 广播给所有客户端
            for client in list(chat_clients):
                try:
                    await client.send_text(response)
                except Exception:
                    chat_clients.discard(client)
            frame = f"id: {seq}\ndata: {response}\n\n"
            for queue in event_queues:
                queue.put_nowait(frame)

    except WebSocketDisconnect:
        pass
    except Exception:
        pass
    finally:
        chat_clients.discard(websocket)
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


@app.websocket("/echo")
async def echo_endpoint(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])
    except Exception:
        pass


async def chat_events():
    """The /events stream: every chat message, until the client leaves."""
    queue: asyncio.Queue = asyncio.Queue()
    event_queues.add(queue)
    try:
        yield "retry: 3000\n\n"
        while True:
            frame = await queue.get()
            if frame is None:  # shutting down
                return
            yield frame
    finally:
        event_queues.discard(queue)


@app.get("/events")
async def events():
    return StreamingResponse(chat_events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def generate_events():
    """生成SSE事件流"""
    for token in TOKENS:
        yield f"data: {token}\n\n"
        if TOKEN_INTERVAL:
            await asyncio.sleep(TOKEN_INTERVAL)

    # 发送结束标记
    yield "data: [DONE]\n\n"


@app.get("/stream")
async def stream_events():
    return StreamingResponse(generate_events(), media_type="text/event-stream", headers=SSE_HEADERS)


class PeerServer(uvicorn.Server):
    """uvicorn's server, with signals that end the /events streams and exit 0."""

    @contextlib.contextmanager
    def capture_signals(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        for queue in event_queues:
            queue.put_nowait(None)


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--addr {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    global TOKEN_INTERVAL
    parser = argparse.ArgumentParser(
        description="FastAPI peer server of the benchmark", allow_abbrev=False
    )
    parser.add_argument("--addr", default="127.0.0.1:8000", help="HOST:PORT (port 0: any free port)")
    parser.add_argument(
        "--heartbeat", type=float, default=20.0,
        help="WebSocket keepalive ping interval in seconds (uvicorn's ws_ping_interval; 0: off)",
    )
    parser.add_argument(
        "--token-interval-ms", type=int, default=20,
        help="pause between two tokens of /stream (0: none)",
    )
    args = parser.parse_args(argv)
    try:
        host, port = parse_addr(args.addr)
    except ValueError as error:
        parser.error(str(error))
    if args.token_interval_ms < 0 or args.heartbeat < 0:
        parser.error("--heartbeat and --token-interval-ms must not be negative")
    TOKEN_INTERVAL = args.token_interval_ms / 1000

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        print(f"cannot bind {args.addr}: {error}", file=sys.stderr)
        return 1
    sock.listen(2048)
    sock.set_inheritable(True)

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_ping_interval=args.heartbeat or None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = PeerServer(config)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    print(f"listening on http://{shown}:{bound_port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
