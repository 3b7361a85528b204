//! WebSocket over real TCP: a tokio-tungstenite client for the happy paths, a raw
//! socket for the bytes a well-behaved client never sends.

mod common;

use std::time::Duration;

use common::{MAX_MESSAGE, RawClient, client_frame, exchange, start_server, within};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TungsteniteCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as TungsteniteCloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message as TungsteniteMessage};
use wsse_scratch::http::Connection;
use wsse_scratch::websocket::{self, CloseFrame, Limits, Message};
use wsse_wire::close::{CloseCode, encode_close_payload};
use wsse_wire::frame::{FrameHeader, OpCode, encode_frame};
use wsse_wire::handshake::{client_request, generate_key};

async fn tungstenite_client(
    address: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (socket, response) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    socket
}

#[tokio::test]
async fn text_and_binary_are_echoed() {
    within(async {
        let mut socket = tungstenite_client(start_server().await).await;
        socket
            .send(TungsteniteMessage::text("héllo"))
            .await
            .unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            TungsteniteMessage::text("héllo")
        );
        let bytes = Bytes::from((0..=255u8).collect::<Vec<u8>>());
        socket
            .send(TungsteniteMessage::Binary(bytes.clone()))
            .await
            .unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            TungsteniteMessage::Binary(bytes)
        );
        // A message at the limit, big enough to need several reads.
        let big = "x".repeat(MAX_MESSAGE);
        socket
            .send(TungsteniteMessage::text(big.clone()))
            .await
            .unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            TungsteniteMessage::text(big)
        );
    })
    .await;
}

#[tokio::test]
async fn a_ping_gets_a_pong_with_the_same_payload() {
    within(async {
        let mut socket = tungstenite_client(start_server().await).await;
        let payload = Bytes::from_static(b"are you there?");
        socket
            .send(TungsteniteMessage::Ping(payload.clone()))
            .await
            .unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            TungsteniteMessage::Pong(payload)
        );
    })
    .await;
}

#[tokio::test]
async fn the_close_handshake_echoes_1000() {
    within(async {
        let mut socket = tungstenite_client(start_server().await).await;
        socket
            .close(Some(TungsteniteCloseFrame {
                code: TungsteniteCloseCode::Normal,
                reason: "bye".into(),
            }))
            .await
            .unwrap();
        let Some(Ok(TungsteniteMessage::Close(Some(frame)))) = socket.next().await else {
            panic!("expected a close frame");
        };
        assert_eq!(frame.code, TungsteniteCloseCode::Normal);
        // Then the stream ends: the server closed TCP.
        assert!(socket.next().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn the_server_closes_tcp_first() {
    within(async {
        let mut client = RawClient::connect(start_server().await, b"").await;
        let close = encode_close_payload(CloseCode::NORMAL, "done");
        client
            .send(&client_frame(true, OpCode::Close, &close))
            .await;
        // Our side stays open: the EOF we read is the server's doing.
        client.expect_close(CloseCode::NORMAL).await;
    })
    .await;
}

#[tokio::test]
async fn an_unmasked_frame_is_closed_with_1002() {
    within(async {
        let mut client = RawClient::connect(start_server().await, b"").await;
        let mut unmasked = Vec::new();
        encode_frame(&mut unmasked, true, OpCode::Text, None, b"hello");
        client.send(&unmasked).await;
        client.expect_close(CloseCode::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_is_closed_with_1007() {
    within(async {
        let mut client = RawClient::connect(start_server().await, b"").await;
        client
            .send(&client_frame(true, OpCode::Text, b"ok \xff\xfe"))
            .await;
        client.expect_close(CloseCode::INVALID_PAYLOAD).await;
    })
    .await;
}

#[tokio::test]
async fn a_message_over_the_limit_is_closed_with_1009() {
    within(async {
        // One frame above the limit: refused on its header alone.
        let mut client = RawClient::connect(start_server().await, b"").await;
        client
            .send(&client_frame(
                true,
                OpCode::Binary,
                &vec![7; MAX_MESSAGE + 1],
            ))
            .await;
        client.expect_close(CloseCode::MESSAGE_TOO_BIG).await;

        // Fragments that are each small but too big together.
        let mut client = RawClient::connect(start_server().await, b"").await;
        let half = vec![7; MAX_MESSAGE / 2 + 1];
        client
            .send(&client_frame(false, OpCode::Binary, &half))
            .await;
        client
            .send(&client_frame(true, OpCode::Continuation, &half))
            .await;
        client.expect_close(CloseCode::MESSAGE_TOO_BIG).await;
    })
    .await;
}

#[tokio::test]
async fn a_frame_in_the_same_write_as_the_upgrade_is_not_lost() {
    within(async {
        let mut first = client_frame(true, OpCode::Text, b"right away");
        first.extend(client_frame(true, OpCode::Binary, b"and more"));
        let mut client = RawClient::connect(start_server().await, &first).await;
        assert_eq!(
            client.read_message().await,
            Message::Text("right away".into())
        );
        assert_eq!(
            client.read_message().await,
            Message::Binary(b"and more".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn a_frame_arriving_in_small_pieces_is_whole() {
    within(async {
        // The server's 1 ms timer cancels `receive` between the pieces.
        let mut client = RawClient::connect(start_server().await, b"").await;
        let text: String = "0123456789€".repeat(200);
        let mut frame = client_frame(false, OpCode::Text, &text.as_bytes()[..1001]);
        frame.extend(client_frame(
            true,
            OpCode::Continuation,
            &text.as_bytes()[1001..],
        ));
        for piece in frame.chunks(97) {
            client.send(piece).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(client.read_message().await, Message::Text(text));
    })
    .await;
}

/// The first `sent` bytes of a frame whose header announces `total` payload bytes.
fn partial_frame(fin: bool, opcode: OpCode, sent: &[u8], total: usize) -> Vec<u8> {
    let mut full = sent.to_vec();
    full.resize(total, b'a');
    let frame = client_frame(fin, opcode, &full);
    let header_len = FrameHeader::decode(&frame).unwrap().unwrap().1;
    frame[..header_len + sent.len()].to_vec()
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_frame_is_complete() {
    within(async {
        // A text frame of 1000 bytes, of which only 10 arrive; the 4th byte is invalid.
        let mut client = RawClient::connect(start_server().await, b"").await;
        client
            .send(&partial_frame(true, OpCode::Text, b"abc\xffdefghi", 1000))
            .await;
        client.expect_close(CloseCode::INVALID_PAYLOAD).await;

        // The same in a continuation: the first fragment ends inside '€' (E2 82 AC).
        let mut client = RawClient::connect(start_server().await, b"").await;
        client
            .send(&client_frame(false, OpCode::Text, b"ab\xe2"))
            .await;
        client
            .send(&partial_frame(
                true,
                OpCode::Continuation,
                b"\x82\xac ok \xc0",
                1000,
            ))
            .await;
        client.expect_close(CloseCode::INVALID_PAYLOAD).await;
    })
    .await;
}

#[tokio::test]
async fn partial_frames_that_may_still_be_valid_are_not_failed() {
    within(async {
        let mut client = RawClient::connect(start_server().await, b"").await;
        // Text split inside a character, at the frame and at the TCP level.
        let mut frames = client_frame(false, OpCode::Text, "ab€".as_bytes().split_at(3).0);
        frames.extend(client_frame(
            true,
            OpCode::Continuation,
            &"ab€ cd€".as_bytes()[3..],
        ));
        // Binary bytes are not text, even when they arrive in pieces.
        frames.extend(client_frame(true, OpCode::Binary, b"\xff\xfe\xfd\xfc"));
        for piece in frames.chunks(3) {
            client.send(piece).await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        assert_eq!(client.read_message().await, Message::Text("ab€ cd€".into()));
        assert_eq!(
            client.read_message().await,
            Message::Binary(b"\xff\xfe\xfd\xfc".to_vec())
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_upgrades_get_400_or_426_never_101() {
    within(async {
        let address = start_server().await;
        let without_key = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                           Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let response = String::from_utf8(exchange(address, without_key.as_bytes()).await).unwrap();
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");

        let old_version = client_request("x", "/ws", &generate_key(), &[])
            .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
        let response = String::from_utf8(exchange(address, old_version.as_bytes()).await).unwrap();
        assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
        assert!(
            response.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{response}"
        );
        assert!(!response.contains("101"), "{response}");
    })
    .await;
}

/// Accepts one WebSocket on `listener` and returns its writer, for tests that
/// drive the server side by hand.
async fn accept_one(listener: &TcpListener) -> websocket::WebSocketWriter {
    let (stream, _) = listener.accept().await.unwrap();
    let mut connection = Connection::new(stream);
    let request = connection.next_request().await.unwrap().unwrap();
    let (stream, leftover) = connection.into_parts();
    let (_reader, writer) = websocket::accept(stream, &request, leftover, Limits::default())
        .await
        .unwrap();
    writer
}

#[tokio::test]
async fn nothing_can_be_sent_after_a_close() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut writer = accept_one(&listener).await;
            assert!(
                writer.send_ping(&[0; 126]).await.is_err(),
                "ping over 125 bytes"
            );
            writer
                .send_close(CloseCode::GOING_AWAY, "bye")
                .await
                .unwrap();
            assert!(writer.close_sent());
            assert!(writer.send_text("too late").await.is_err());
        });
        let mut client = RawClient::connect(address, b"").await;
        assert_eq!(
            client.read_message().await,
            Message::Close(Some(CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: "bye".into()
            }))
        );
        server.await.unwrap();
        // The server dropped both halves: the connection is closed, nothing followed.
        client.expect_eof().await;
        client.stream.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_texts_arrives_as_one_frame_each_in_order() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut writer = accept_one(&listener).await;
            writer.send_texts(["one", "", "three"]).await.unwrap();
            writer.send_texts(Vec::<String>::new()).await.unwrap();
            writer.send_text("four").await.unwrap();
        });
        let mut client = RawClient::connect(address, b"").await;
        server.await.unwrap();
        // Byte for byte: one unfragmented, unmasked frame per text, nothing between.
        let mut expected = Vec::new();
        for text in ["one", "", "three", "four"] {
            encode_frame(&mut expected, true, OpCode::Text, None, text.as_bytes());
        }
        assert_eq!(client.read_to_end().await, expected);
    })
    .await;
}
