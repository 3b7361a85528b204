//! permessage-deflate (RFC 7692) against the real servers: which of them accepts an
//! offer, what a decompression bomb gets, and Python's `websockets` (an independent
//! implementation of the extension) compressing and inflating against the
//! from-scratch server.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wsse_testkit::process::resident_kib;
use wsse_testkit::ws::RawWs;
use wsse_testkit::{SERVERS, ServerProcess, programs_present, unless_it_runs};
use wsse_wire::deflate::{Deflater, TAIL};
use wsse_wire::frame::{OpCode, encode_compressed_frame};
use wsse_wire::mask::random_key;

/// What Chromium offers on every WebSocket it opens.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

fn offer() -> [(&'static str, &'static str); 1] {
    [("Sec-WebSocket-Extensions", BROWSER_OFFER)]
}

#[tokio::test]
async fn only_the_from_scratch_server_accepts_the_offer() {
    for server in SERVERS {
        let process = ServerProcess::spawn(server, &[]).expect("the server starts");
        for path in ["/echo", "/ws?name=deflate"] {
            let socket = RawWs::connect(process.addr(), path, &offer())
                .await
                .unwrap_or_else(|error| panic!("{server} {path}: {error}"));
            let answer = socket.head.header("Sec-WebSocket-Extensions");
            if server == "scratch" {
                assert_eq!(answer, Some("permessage-deflate"), "{server} {path}");
            } else {
                // tungstenite (axum, warp) and actix-ws have no permessage-deflate.
                assert_eq!(answer, None, "{server} {path} declines");
            }
        }
    }
    let declining = ServerProcess::spawn("scratch", &["--no-deflate"]).expect("starts");
    let socket = RawWs::connect(declining.addr(), "/echo", &offer())
        .await
        .expect("a 101 without the extension");
    assert_eq!(socket.head.header("Sec-WebSocket-Extensions"), None);
}

/// `mebibytes` MiB of zeros as one compressed message: a megabyte at a time through
/// one compressor (each sync flush keeps its tail but the last), so building it costs
/// little and it takes a few KiB per MiB.
fn bomb(mebibytes: usize) -> Vec<u8> {
    let mut deflater = Deflater::new(15, false);
    let zeros = vec![0; 1 << 20];
    let mut compressed = Vec::new();
    for index in 0..mebibytes {
        compressed.extend(deflater.compress(&zeros));
        if index + 1 < mebibytes {
            compressed.extend_from_slice(&TAIL);
        }
    }
    compressed
}

fn rss_bytes(pid: u32) -> u64 {
    resident_kib(pid).expect("the server's resident memory") * 1024
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_at_the_limit_with_1009() {
    let server = ServerProcess::spawn("scratch", &[]).expect("the server starts");
    // 64 MiB of zeros, some 64 KiB on the wire: four times /echo's 16 MiB and a
    // thousand times /ws's 64 KiB.
    let bomb = bomb(64);
    assert!(bomb.len() < 256 << 10, "{} bytes on the wire", bomb.len());
    let mut frame = Vec::new();
    encode_compressed_frame(&mut frame, OpCode::Binary, Some(random_key()), &bomb);
    for (path, limit) in [("/echo", 16 << 20), ("/ws?name=bomb", 64 << 10)] {
        let before = rss_bytes(server.pid());
        let mut socket = RawWs::connect(server.addr(), path, &offer())
            .await
            .expect("the handshake");
        socket.send_bytes(&frame).await.expect("sent");
        let code = socket
            .expect_close(Duration::from_secs(20))
            .await
            .expect("a close frame");
        assert_eq!(code, 1009, "{path}");
        let grown = rss_bytes(server.pid()).saturating_sub(before);
        // What the server holds is the message up to its limit and the compressed
        // frame, never the 64 MiB the frame inflates to.
        assert!(
            grown < limit + (8 << 20),
            "{path}: RSS grew by {grown} bytes for a limit of {limit}"
        );
    }
    // The server still serves.
    RawWs::connect(server.addr(), "/echo", &offer())
        .await
        .expect("a new connection after the bombs");
}

#[test]
fn python_websockets_compresses_and_inflates_with_the_from_scratch_server() {
    let websockets = unless_it_runs(
        "Python's websockets library",
        "python3",
        &["-c", "import websockets"],
    );
    if !programs_present(
        "permessage-deflate with Python's websockets",
        &[(websockets, "pip install websockets==17.4")],
    ) {
        return;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/testkit/external/websockets_deflate.py");
    for flags in [
        &[][..],
        &[
            "--deflate-no-context-takeover",
            "--deflate-window-bits",
            "9",
        ],
    ] {
        let server = ServerProcess::spawn("scratch", flags).expect("the server starts");
        let output = Command::new("python3")
            .arg(&script)
            .arg(format!("ws://{}/echo", server.addr()))
            .output()
            .expect("python3 runs");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{flags:?}: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(report.contains("\"echoed\": 7"), "{flags:?}: {report}");
        if flags.is_empty() {
            assert!(
                report.contains("\"extensions\": \"permessage-deflate\""),
                "{report}"
            );
        } else {
            assert!(
                report.contains(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9"
                ),
                "{report}"
            );
        }
    }
}
