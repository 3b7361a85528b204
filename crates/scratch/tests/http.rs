//! HTTP/1.1 over real TCP: responses, keep-alive, pipelining and the refusals.

mod common;

use std::time::Duration;

use common::{ParsedResponse, exchange, parse_responses, start_server, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsse_scratch::http::{HttpError, MAX_HEAD_LEN, read_request};

async fn one_response(request: &[u8]) -> ParsedResponse {
    let address = start_server().await;
    let mut responses = parse_responses(&exchange(address, request).await);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.remove(0)
}

#[tokio::test]
async fn a_get_has_status_line_and_content_length() {
    within(async {
        let address = start_server().await;
        let raw = exchange(
            address,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        let response = parse_responses(&raw).remove(0);
        assert_eq!(response.header("Content-Length"), Some("5"));
        assert_eq!(response.body, b"hello");
        assert_eq!(response.header("Connection"), Some("close"));
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
    })
    .await;
}

#[tokio::test]
async fn json_and_extra_headers() {
    within(async {
        let response = one_response(b"GET /json HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert_eq!(response.status, 201);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.header("X-Test"), Some("yes"));
        assert_eq!(response.body, br#"{"ok":true}"#);
    })
    .await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    within(async {
        let address = start_server().await;
        let raw = exchange(
            address,
            b"GET /query?name=first HTTP/1.1\r\n\r\n\
              POST /body HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecond\
              GET /query?name=th%69rd+one HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        let bodies: Vec<Vec<u8>> = parse_responses(&raw)
            .into_iter()
            .map(|response| response.body)
            .collect();
        assert_eq!(
            bodies,
            [b"first".to_vec(), b"second".to_vec(), b"third one".to_vec()]
        );
    })
    .await;
}

#[tokio::test]
async fn a_query_is_decoded_as_the_app_decodes_it() {
    // `%+5` is not an escape (a `+` is no hex digit), so it stays as it is, with the
    // `+` a space; `%2B` is a `+`. Browsers' `URLSearchParams` read it the same way.
    let query = "name=%+5%zz+%2B%C3%A9";
    let expected = wsse_app::query::query_param(Some(query), "name").unwrap();
    assert_eq!(expected, "% 5%zz +é");
    within(async {
        let request = format!("GET /query?{query} HTTP/1.1\r\nConnection: close\r\n\r\n");
        let response = one_response(request.as_bytes()).await;
        assert_eq!(String::from_utf8(response.body).unwrap(), expected);
    })
    .await;
}

#[tokio::test]
async fn keep_alive_serves_requests_one_after_another() {
    within(async {
        let address = start_server().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        for name in ["one", "two"] {
            let request = format!("GET /query?name={name} HTTP/1.1\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            // Read exactly one response: its head, then Content-Length bytes.
            let mut received = Vec::new();
            let response = loop {
                stream.read_buf(&mut received).await.unwrap();
                if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n")
                    && received.len() >= end + 4 + name.len()
                {
                    break parse_responses(&received).remove(0);
                }
            };
            assert_eq!(response.body, name.as_bytes());
            assert_eq!(response.header("Connection"), None);
        }
        // A body that arrives in pieces, on the same connection.
        stream
            .write_all(
                b"POST /body HTTP/1.1\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello",
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b" world").await.unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.unwrap();
        assert_eq!(parse_responses(&received)[0].body, b"hello world");
    })
    .await;
}

#[tokio::test]
async fn http_1_0_closes_unless_asked_to_keep_alive() {
    within(async {
        let response = one_response(b"GET / HTTP/1.0\r\n\r\n").await;
        assert_eq!(response.header("Connection"), Some("close"));

        let address = start_server().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let mut received = vec![0; 1024];
        let read = stream.read(&mut received).await.unwrap();
        let response = parse_responses(&received[..read]).remove(0);
        assert_eq!(response.header("Connection"), Some("keep-alive"));
    })
    .await;
}

#[tokio::test]
async fn head_gets_the_length_without_the_body() {
    within(async {
        let address = start_server().await;
        let raw = exchange(address, b"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        let text = String::from_utf8(raw).unwrap();
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "no body: {text:?}");
    })
    .await;
}

#[tokio::test]
async fn unknown_path_is_404() {
    within(async {
        let response = one_response(b"GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert_eq!(response.status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_head_over_16_kib_is_431() {
    within(async {
        let padding = "a".repeat(MAX_HEAD_LEN + 4096);
        let request = format!("GET / HTTP/1.1\r\nX-Padding: {padding}\r\n\r\n");
        let response = one_response(request.as_bytes()).await;
        assert_eq!(response.status, 431);
        assert_eq!(response.header("Connection"), Some("close"));
    })
    .await;
}

#[tokio::test]
async fn too_many_header_fields_is_431() {
    within(async {
        let fields = "X-Field: 1\r\n".repeat(65);
        let request = format!("GET / HTTP/1.1\r\n{fields}\r\n");
        assert_eq!(one_response(request.as_bytes()).await.status, 431);
    })
    .await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    within(async {
        let response =
            one_response(b"POST /body HTTP/1.1\r\nContent-Length: 2000000\r\n\r\nsome of it").await;
        assert_eq!(response.status, 413);
        assert!(String::from_utf8_lossy(&response.body).contains("2000000"));
    })
    .await;
}

#[tokio::test]
async fn a_malformed_request_line_is_400() {
    within(async {
        let response = one_response(b"NOT A REQUEST\r\n\r\n").await;
        assert_eq!(response.status, 400);
        let response = one_response(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").await;
        assert_eq!(response.status, 400);
    })
    .await;
}

#[tokio::test]
async fn a_chunked_request_body_is_411() {
    within(async {
        let response = one_response(
            b"POST /body HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 411);
    })
    .await;
}

/// A connected pair of sockets: (client, server).
async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test]
async fn eof_between_requests_is_a_clean_end() {
    within(async {
        let (mut client, mut server) = socket_pair().await;
        client
            .write_all(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let mut buffer = Vec::new();
        let first = read_request(&mut server, &mut buffer).await.unwrap();
        assert_eq!(first.unwrap().path, "/a");
        // The second request was read along with the first and waits in the buffer.
        assert_eq!(buffer, b"GET /b HTTP/1.1\r\n\r\n");
        let second = read_request(&mut server, &mut buffer).await.unwrap();
        assert_eq!(second.unwrap().path, "/b");
        assert!(
            read_request(&mut server, &mut buffer)
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn eof_inside_a_request_is_an_error() {
    within(async {
        for partial in [
            &b"GET / HTTP/1.1\r\nHost"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            let (mut client, mut server) = socket_pair().await;
            client.write_all(partial).await.unwrap();
            client.shutdown().await.unwrap();
            let result = read_request(&mut server, &mut Vec::new()).await;
            assert!(matches!(result, Err(HttpError::Incomplete)), "{result:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn bytes_after_the_request_stay_in_the_buffer() {
    within(async {
        let (mut client, mut server) = socket_pair().await;
        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\x81\x85rest")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let mut buffer = Vec::new();
        let request = read_request(&mut server, &mut buffer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(request.body, b"abc");
        // Read whatever else the client sent: it must all follow what the buffer kept.
        server.read_to_end(&mut buffer).await.unwrap();
        assert_eq!(buffer, b"\x81\x85rest");
    })
    .await;
}
