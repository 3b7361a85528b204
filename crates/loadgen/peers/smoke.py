#!/usr/bin/env python3
"""Smoke test of a peer server: does it speak the load generator's protocol?

    python3 smoke.py http://127.0.0.1:PORT
        checks a server that is already running;
    python3 smoke.py --spawn -- COMMAND [ARGS...]
        starts COMMAND (which must print `listening on http://IP:PORT` as its first
        line on stdout), checks it, then opens a few connections, sends it SIGTERM
        and checks that it exits 0 within 2 seconds.

Checks, in order (the first failure ends the run with exit status 1 and a message
that says which check failed):
  1. /ws sends a {"type":"welcome"...} text on open;
  2. a chat message reaches two /ws clients (sender included) and one /events reader
     as compact JSON beginning {"type":"message" with seq, from and content, and
     /events opens with `retry: 3000` and the SSE headers, then `id: SEQ`;
  3. /echo sends back text and binary messages unchanged;
  4. /stream?prompt=... sends tokens as `data:` events, then `data: [DONE]`, and
     ends the response;
  5. N concurrent /echo connections (1000 by default, --connections) open and all
     still echo once every one is open.
  6. with --spawn: SIGTERM while connections are open ends the server with exit
     status 0 within 2 s.

Only the Python standard library and `websockets` are used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10.0


class CheckFailed(Exception):
    pass


def fail(message: str) -> None:
    raise CheckFailed(message)


def expect(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


async def ws_open(base: str, path: str):
    return await connect(
        base.replace("http://", "ws://", 1) + path,
        compression=None,
        ping_interval=None,
        open_timeout=TIMEOUT,
        max_queue=None,
    )


async def recv_text(ws, what: str) -> str:
    try:
        message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    except asyncio.TimeoutError:
        fail(f"{what}: nothing received within {TIMEOUT} s")
    except ConnectionClosed as error:
        fail(f"{what}: the connection closed ({error})")
    expect(isinstance(message, str), f"{what}: expected a text message, got {message!r}")
    return message


class SseStream:
    """A GET on a raw socket, its response head, and its body as SSE events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunked = False
        self.body_done = False
        self.text = ""  # decoded body not yet parsed into lines
        self.raw = bytearray()  # undecoded bytes
        self.pending: list[dict] = []
        self.event: dict = {}
        self.everything = ""  # the whole decoded body so far, for checks and messages

    @classmethod
    async def open(cls, base: str, path: str) -> "SseStream":
        parts = urlsplit(base)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port), TIMEOUT
        )
        stream = cls(reader, writer)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ")
        expect(len(status_line) >= 2 and status_line[1].isdigit(), f"GET {path}: bad status line {lines[0]!r}")
        stream.status = int(status_line[1])
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                stream.headers[name.strip().lower()] = value.strip()
        stream.chunked = "chunked" in stream.headers.get("transfer-encoding", "").lower()
        return stream

    def close(self) -> None:
        self.writer.close()

    async def _read_body(self) -> bool:
        """Reads more of the body into self.text; False at its end."""
        if self.body_done:
            return False
        data = await self.reader.read(65536)
        if not data:
            self.body_done = True
            return False
        if not self.chunked:
            self._add(data)
            return True
        self.raw += data
        while True:
            end = self.raw.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(self.raw[:end]).split(b";")[0], 16)
            if len(self.raw) < end + 2 + size + 2:
                break
            chunk = bytes(self.raw[end + 2 : end + 2 + size])
            del self.raw[: end + 2 + size + 2]
            if size == 0:
                self.body_done = True
                break
            self._add(chunk)
        return True

    def _add(self, data: bytes) -> None:
        text = data.decode("utf-8")
        self.everything += text
        self.text += text
        # The event stream format: lines, fields, a blank line dispatches.
        while True:
            cut = min((i for i in (self.text.find("\n"), self.text.find("\r")) if i >= 0), default=-1)
            if cut < 0:
                break
            line = self.text[:cut]
            skip = 2 if self.text[cut : cut + 2] == "\r\n" else 1
            self.text = self.text[cut + skip :]
            if line == "":
                if "data" in self.event or "retry" in self.event:
                    self.pending.append(self.event)
                self.event = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self.event["data"] = self.event["data"] + "\n" + value if "data" in self.event else value
            elif name in ("id", "event", "retry"):
                self.event[name] = value

    async def next_event(self, what: str) -> dict | None:
        """The next dispatched block (an event, or a bare retry); None at the end."""
        deadline = time.monotonic() + TIMEOUT
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"{what}: no event within {TIMEOUT} s (body so far: {self.everything[-300:]!r})")
            try:
                more = await asyncio.wait_for(self._read_body(), left)
            except asyncio.TimeoutError:
                fail(f"{what}: no event within {TIMEOUT} s (body so far: {self.everything[-300:]!r})")
            if not more:
                return None
        return self.pending.pop(0)

    async def expect_end(self, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"{what}: the response did not end within {TIMEOUT} s")
            try:
                more = await asyncio.wait_for(self._read_body(), left)
            except asyncio.TimeoutError:
                fail(f"{what}: the response did not end within {TIMEOUT} s")
            expect(not self.pending, f"{what}: more events after the end: {self.pending}")
            if not more:
                return


def check_sse_head(stream: SseStream, path: str) -> None:
    expect(stream.status == 200, f"GET {path}: status {stream.status}, expected 200")
    content_type = stream.headers.get("content-type", "")
    expect(
        content_type.split(";")[0].strip() == "text/event-stream",
        f"GET {path}: Content-Type {content_type!r}, expected text/event-stream",
    )
    cache = stream.headers.get("cache-control", "")
    expect("no-cache" in cache, f"GET {path}: Cache-Control {cache!r}, expected no-cache")


async def check_chat(base: str) -> None:
    # 1. Welcome.
    alice = await ws_open(base, "/ws?name=alice")
    welcome = await recv_text(alice, "/ws?name=alice welcome")
    expect(welcome.startswith('{"type":"welcome"'), f"/ws welcome {welcome!r} does not begin with {{\"type\":\"welcome\"")
    json.loads(welcome)
    print(f"ok: /ws welcome {welcome}")
    bob = await ws_open(base, "/ws?name=bob")
    await recv_text(bob, "/ws?name=bob welcome")

    # 2. /events: headers and retry first.
    events = await SseStream.open(base, "/events")
    check_sse_head(events, "/events")
    first = await events.next_event("/events first block")
    expect(first is not None, "/events ended at once")
    expect(
        events.everything.startswith("retry: 3000\n"),
        f"/events does not start with 'retry: 3000': {events.everything[:80]!r}",
    )
    expect(first.get("retry") == "3000" and "data" not in first, f"/events first block {first} is not a bare retry: 3000")
    print("ok: /events headers and retry: 3000 first")

    # The broadcast, twice (seq must grow by one).
    seqs = []
    for round_number, content in enumerate(["hello peers", "second \"quoted\" ünïcode"]):
        await alice.send(json.dumps({"type": "message", "content": content}))
        for ws, who in ((alice, "alice (the sender)"), (bob, "bob")):
            text = await recv_text(ws, f"/ws broadcast to {who}")
            expect(
                text.startswith('{"type":"message"'),
                f"/ws broadcast to {who}: {text!r} does not begin with {{\"type\":\"message\"",
            )
            data = json.loads(text)
            expect(
                list(data)[:4] == ["type", "seq", "from", "content"],
                f"/ws broadcast to {who}: keys {list(data)}, expected type, seq, from, content first",
            )
            expect(data["from"] == "alice", f"/ws broadcast to {who}: from {data['from']!r}, expected 'alice'")
            expect(data["content"] == content, f"/ws broadcast to {who}: content {data['content']!r}, expected {content!r}")
            expect(isinstance(data["seq"], int) and data["seq"] >= 1, f"/ws broadcast: bad seq {data['seq']!r}")
            compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            expect(
                text == compact or text == json.dumps(data, separators=(",", ":")),
                f"/ws broadcast to {who}: {text!r} is not compact JSON",
            )
            if who == "bob":
                seqs.append(data["seq"])
        event = await events.next_event("/events broadcast")
        expect(event is not None, "/events ended before the broadcast")
        expect(
            event.get("data", "").startswith('{"type":"message"'),
            f"/events broadcast: data {event.get('data')!r} does not begin with {{\"type\":\"message\"",
        )
        sse_data = json.loads(event["data"])
        expect(sse_data["content"] == content, f"/events broadcast: content {sse_data['content']!r}, expected {content!r}")
        expect(event.get("id") == str(sse_data["seq"]), f"/events broadcast: id {event.get('id')!r}, seq {sse_data['seq']}")
        expect(event.get("event") is None, f"/events broadcast: event type {event.get('event')!r}, expected none")
        print(f"ok: broadcast {round_number + 1} reached alice, bob and /events: {event['data']}")
    expect(seqs[1] == seqs[0] + 1, f"seq went from {seqs[0]} to {seqs[1]}, expected +1")

    # Something else on /ws is ignored, and the connection stays usable.
    await alice.send(json.dumps({"type": "typing"}))
    await alice.send(json.dumps({"type": "message", "content": "after"}))
    for ws, who in ((alice, "alice"), (bob, "bob")):
        text = await recv_text(ws, f"/ws broadcast to {who} after an ignored message")
        expect(
            json.loads(text)["content"] == "after",
            f"/ws: {who} got {text!r} after an ignored message, expected content 'after'",
        )
    event = await events.next_event("/events after an ignored message")
    expect(event is not None and json.loads(event["data"])["content"] == "after", f"/events: {event} after an ignored message")
    print("ok: other /ws messages ignored")

    # A client that leaves is removed: the next broadcast still reaches the others.
    await bob.close()
    await asyncio.sleep(0.2)
    await alice.send(json.dumps({"type": "message", "content": "bob left"}))
    text = await recv_text(alice, "/ws broadcast after a client left")
    expect(json.loads(text)["content"] == "bob left", f"/ws after a client left: {text!r}")
    event = await events.next_event("/events after a client left")
    expect(event is not None, "/events ended")
    expect(json.loads(event["data"])["content"] == "bob left", f"/events after a client left: {event}")
    print("ok: broadcast after a /ws client left")
    await alice.close()
    events.close()


async def check_echo(base: str) -> None:
    ws = await ws_open(base, "/echo")
    for message in ["hello", "x" * 5000, '{"type":"message","content":"not chat"}', "ünïcode ✓"]:
        await ws.send(message)
        back = await recv_text(ws, "/echo")
        expect(back == message, f"/echo sent back {back[:80]!r}, expected {message[:80]!r}")
    await ws.send(b"\x00\x01binary\xff")
    try:
        back = await asyncio.wait_for(ws.recv(), TIMEOUT)
    except (asyncio.TimeoutError, ConnectionClosed) as error:
        fail(f"/echo binary: no answer ({error!r})")
    expect(back == b"\x00\x01binary\xff", f"/echo binary: got {back!r}")
    await ws.close()
    print("ok: /echo text and binary")


async def check_stream(base: str) -> None:
    stream = await SseStream.open(base, "/stream?prompt=smoke%20test")
    check_sse_head(stream, "/stream")
    tokens = []
    while True:
        event = await stream.next_event("/stream")
        expect(event is not None, f"/stream ended without [DONE] after {len(tokens)} tokens")
        if "data" not in event:
            continue  # a bare retry
        if event.get("event", "message") != "message":
            continue  # another event type (the Rust servers' heartbeat)
        if event["data"] == "[DONE]":
            break
        tokens.append(event["data"])
    expect(len(tokens) >= 10, f"/stream sent only {len(tokens)} tokens")
    await stream.expect_end("/stream after [DONE]")
    stream.close()
    print(f"ok: /stream {len(tokens)} tokens, [DONE], end: {''.join(tokens)[:60]!r}")


async def check_many_echo(base: str, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100 <= hard or (hard == resource.RLIM_INFINITY and soft < count + 100):
        resource.setrlimit(resource.RLIMIT_NOFILE, (count + 100, hard))
    opened = []
    try:
        for start in range(0, count, 50):
            batch = range(start, min(start + 50, count))
            results = await asyncio.gather(*(ws_open(base, "/echo") for _ in batch), return_exceptions=True)
            for index, result in zip(batch, results):
                if isinstance(result, BaseException):
                    fail(f"{count} concurrent /echo: connection {index} failed: {result!r}")
                opened.append(result)
        await asyncio.sleep(0.5)

        async def round_trip(index: int, ws) -> None:
            message = f"conn {index}"
            await ws.send(message)
            back = await recv_text(ws, f"{count} concurrent /echo, connection {index}")
            expect(back == message, f"{count} concurrent /echo: connection {index} got {back!r}")

        for start in range(0, count, 100):
            await asyncio.gather(*(round_trip(i, opened[i]) for i in range(start, min(start + 100, count))))
        print(f"ok: {count} concurrent /echo connections open and echoing")
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


async def run_checks(base: str, connections: int) -> None:
    await check_chat(base)
    await check_echo(base)
    await check_stream(base)
    await check_many_echo(base, connections)


def spawn(command: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    prefix = "listening on http://"
    if not line.startswith(prefix):
        process.kill()
        process.wait()
        fail(f"{command}: first stdout line {line!r}, expected 'listening on http://IP:PORT'")
    base = "http://" + line.strip()[len(prefix):]
    print(f"ok: started, {line.strip()}")
    return process, base


async def check_sigterm(base: str, process: subprocess.Popen) -> None:
    """SIGTERM with connections open (idle /events and /echo, a chat client, a token
    stream under way): the server must exit 0 within 2 s."""
    streams = [await SseStream.open(base, "/events") for _ in range(20)]
    for stream in streams:
        await stream.next_event("/events before SIGTERM")
    sockets = [await ws_open(base, "/echo") for _ in range(20)]
    chat = await ws_open(base, "/ws?name=last")
    await recv_text(chat, "/ws welcome before SIGTERM")
    tokens = await SseStream.open(base, "/stream?prompt=sigterm")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None and time.monotonic() - started < 2:
        await asyncio.sleep(0.02)
    code = process.poll()
    for stream in streams + [tokens]:
        stream.close()
    for ws in sockets + [chat]:
        ws.transport.abort()
    if code is None:
        process.kill()
        process.wait()
        fail("SIGTERM: the server was still running after 2 s (with connections open)")
    expect(code == 0, f"SIGTERM: the server exited with status {code}, expected 0")
    print(f"ok: SIGTERM with 42 connections open, exit 0 after {time.monotonic() - started:.2f} s")


def main() -> int:
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        usage="smoke.py [--connections N] (http://IP:PORT | --spawn -- COMMAND [ARGS...])",
    )
    parser.add_argument("base", nargs="?", help="the server, http://IP:PORT")
    parser.add_argument("--spawn", action="store_true", help="start the command after --, check it, then SIGTERM it")
    parser.add_argument("--connections", type=int, default=1000, help="concurrent /echo connections (default 1000)")
    args = parser.parse_args(argv)
    if args.spawn == (args.base is not None) or args.spawn != bool(command):
        parser.error("give either a base URL or --spawn -- COMMAND ...")

    process = None
    try:
        if args.spawn:
            process, base = spawn(command)
        else:
            base = args.base.rstrip("/")
        asyncio.run(run_checks(base, args.connections))
        if process is not None:
            asyncio.run(check_sigterm(base, process))
            process = None
    except CheckFailed as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a crash of a check is a failure too
        print(f"FAIL: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
