// Peer server for the benchmark: Node.js, after the article's "Node.js 实现对比"
// (its `ws` WebSocket server and its plain `http` SSE server), made into one
// server that serves the load generator's routes.
//
// Adaptations from the article, each needed by the benchmark (nothing else changed):
//
//  1. One process, one `http` server: the article's two servers both listen on
//     port 8080. The WebSocket servers are created with `noServer` and the
//     upgrade is routed by path (/ws: the chat, /echo: echo), the way the ws
//     docs share one http server between two WebSocket servers; with the
//     article's `{ server }` a single WebSocket server would take every path,
//     and `wss.clients` (the broadcast list) would include the echo clients.
//     The SSE server's HTML page at "/" is left out (no scenario loads it);
//     other paths get a 404.
//  2. Command line: --addr HOST:PORT (port 0: any free port), --heartbeat
//     SECONDS (accepted and ignored: the article's servers send no pings; its
//     separate ping/pong snippet is not part of either server), and
//     --token-interval-ms N (default 20). Unknown flags are an error (exit 2).
//     Instead of "WebSocket 服务器运行在端口 8080" the one stdout line is
//     `listening on http://HOST:PORT` with the bound port.
//  3. No console.log per connection or per message (the article logs each
//     connect, message and close): a log line per message would be measured,
//     and nobody reads the pipe after the first line.
//  4. SIGTERM/SIGINT: stop listening and exit 0 (the article has no handler).
//  5. /ws: the welcome keeps the article's {type:'welcome',content:'连接成功'} and
//     adds the client's name (from ?name=). Each message is parsed as in the
//     article, but text that is not JSON, or JSON that is not
//     {"type":"message"}, is ignored (in the article a bad message throws out of
//     the 'message' handler and kills the process). The broadcast is the
//     article's `wss.clients.forEach(... readyState === OPEN ... send)`, but the
//     JSON is {type:'message',seq,from,content} (seq counts from 1) instead of
//     {type:'broadcast',content}, and it is stringified once per broadcast
//     instead of once per receiver. It also goes to every /events subscriber.
//  6. /echo: a second WebSocket server that sends every message back unchanged,
//     text as text and binary as binary (the article has no echo server).
//  7. /events: the article's SSE server (its `clients` Set of responses, same
//     headers), at /events instead of /stream and matched on the path without
//     the query string. It opens with "retry: 3000\n\n" instead of the
//     "connected" event, after the response is added to the set, and writes
//     "id: SEQ\ndata: JSON\n\n" for each chat message (built once per message)
//     instead of the article's setInterval clock broadcast, which is dropped.
//  8. /stream: the article has no Node token stream; this is its FastAPI
//     generate_events() (five canned messages, one token per Chinese character
//     and "SSE": 32 tokens), each written as plain `data: TOKEN`, a setTimeout
//     of --token-interval-ms between tokens (none when 0), then `data: [DONE]`
//     and the end of the response. The prompt is accepted and ignored.

'use strict';

const WebSocket = require('ws');
const http = require('http');
const { parseArgs } = require('util');

let options;
try {
    ({ values: options } = parseArgs({
        options: {
            addr: { type: 'string', default: '127.0.0.1:8080' },
            heartbeat: { type: 'string', default: '30' },
            'token-interval-ms': { type: 'string', default: '20' },
        },
        strict: true,
        allowPositionals: false,
    }));
} catch (error) {
    console.error(`server.js: ${error.message}`);
    console.error('usage: node server.js [--addr HOST:PORT] [--heartbeat SECONDS] [--token-interval-ms N]');
    process.exit(2);
}

function fail(message) {
    console.error(`server.js: ${message}`);
    process.exit(2);
}

const addrMatch = /^\[?([^\]]*)\]?:(\d+)$/.exec(options.addr);
if (!addrMatch) fail(`--addr ${options.addr} is not HOST:PORT`);
const host = addrMatch[1];
const port = Number(addrMatch[2]);
if (!/^\d+(\.\d+)?$/.test(options.heartbeat)) fail(`--heartbeat ${options.heartbeat} is not a number of seconds`);
if (!/^\d+$/.test(options['token-interval-ms'])) fail(`--token-interval-ms ${options['token-interval-ms']} is not a number`);
const tokenInterval = Number(options['token-interval-ms']);

// The article's generate_events() messages, one token per character ("SSE" whole).
const MESSAGES = [
    '欢迎使用 SSE',
    '这是第一条消息',
    '这是第二条消息',
    '这是第三条消息',
    '流式输出结束',
];
const TOKENS = MESSAGES.flatMap((msg) => msg.match(/[A-Za-z]+|\S/gu));

const clients = new Set();
let seq = 0;

const server = http.createServer((req, res) => {
    const path = req.url.split('?', 1)[0];
    if (path === '/events') {
        // 设置 SSE 响应头
        res.writeHead(200, {
            'Content-Type': 'text/event-stream',
            'Cache-Control': 'no-cache',
            'Connection': 'keep-alive',
            'X-Accel-Buffering': 'no'
        });

        // 添加到客户端集合
        clients.add(res);

        // 发送初始消息
        res.write('retry: 3000\n\n');

        // 处理客户端断开
        req.on('close', () => {
            clients.delete(res);
        });
    } else if (path === '/stream') {
        res.writeHead(200, {
            'Content-Type': 'text/event-stream',
            'Cache-Control': 'no-cache',
            'Connection': 'keep-alive',
            'X-Accel-Buffering': 'no'
        });
        streamTokens(req, res);
    } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found\n');
    }
});

function streamTokens(req, res) {
    if (tokenInterval === 0) {
        for (const token of TOKENS) res.write(`data: ${token}\n\n`);
        res.end('data: [DONE]\n\n');
        return;
    }
    let index = 0;
    let timer = null;
    const next = () => {
        if (index < TOKENS.length) {
            res.write(`data: ${TOKENS[index++]}\n\n`);
            timer = setTimeout(next, tokenInterval);
        } else {
            timer = null;
            res.end('data: [DONE]\n\n');
        }
    };
    req.on('close', () => {
        if (timer) clearTimeout(timer);
    });
    next();
}

const wss = new WebSocket.Server({ noServer: true });
const echo = new WebSocket.Server({ noServer: true });

server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://localhost');
    const target = url.pathname === '/ws' ? wss : url.pathname === '/echo' ? echo : null;
    if (!target) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
    }
    target.handleUpgrade(req, socket, head, (ws) => {
        target.emit('connection', ws, req, url);
    });
});

wss.on('connection', (ws, req, url) => {
    const name = url.searchParams.get('name') || '';

    // 发送欢迎消息
    ws.send(JSON.stringify({
        type: 'welcome',
        name,
        content: '连接成功'
    }));

    // 接收消息
    ws.on('message', (message) => {
        let data;
        try {
            data = JSON.parse(message);
        } catch {
            return;
        }
        if (data === null || data.type !== 'message') return;

        // 广播给所有客户端
        seq += 1;
        const text = JSON.stringify({
            type: 'message',
            seq,
            from: name,
            content: data.content
        });
        wss.clients.forEach((client) => {
            if (client.readyState === WebSocket.OPEN) {
                client.send(text);
            }
        });
        const frame = `id: ${seq}\ndata: ${text}\n\n`;
        clients.forEach((res) => {
            res.write(frame);
        });
    });
});

echo.on('connection', (ws) => {
    ws.on('message', (message, isBinary) => {
        ws.send(message, { binary: isBinary });
    });
});

server.listen(port, host, () => {
    const bound = server.address();
    const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
    process.stdout.write(`listening on http://${shown}:${bound.port}\n`);
});

server.on('error', (error) => {
    console.error(`server.js: ${error.message}`);
    process.exit(1);
});

function stop() {
    server.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
