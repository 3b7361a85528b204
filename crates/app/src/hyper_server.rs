//! The HTTP/1.1 server under axum and warp: hyper's, driven by an accept loop of our
//! own instead of `axum::serve` or `warp::serve`.
//!
//! Both frameworks' `serve` build hyper's connection builder themselves and install no
//! timer, and without a timer hyper's header read timeout never runs: a client that
//! sends its request head a byte now and then, or sends nothing after its first
//! request, holds the connection for good (slowloris), and a few thousand such clients
//! hold every file descriptor. Neither framework lets us reach the builder, so the two
//! servers build it here, with the same limits as the other two servers:
//!
//! - each request head within `--request-head-timeout`, counted from the connection's
//!   start or its previous response; a client slower than that is disconnected;
//! - a head of at most [`MAX_REQUEST_HEAD_BYTES`]; above it, `431 Request Header
//!   Fields Too Large` (hyper's own answer, with no body).
//!
//! The loop also puts the TCP peer's address in every request as a [`Peer`], which the
//! glue reads for the limit per client address, and on `stop` it stops accepting and
//! lets every connection finish the request it is serving, as the frameworks' graceful
//! shutdown does. Upgraded connections (WebSockets) leave hyper at the upgrade and are
//! the glue's to close.
//!
//! With `--tls` ([`crate::tls`]) each connection first does its TLS handshake, and
//! then speaks what ALPN chose: HTTP/2 (`h2`) or HTTP/1.1. Over HTTP/2 a stream is a
//! request; at most [`MAX_HTTP2_STREAMS`] at once per connection (the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`; a stream above it is reset with
//! `REFUSED_STREAM`), and a WebSocket is an extended CONNECT (RFC 8441) if the glue's
//! framework can take one ([`Options::websockets_over_http2`]). Without TLS it is
//! HTTP/1.1 only, as before: no cleartext HTTP/2, which browsers do not speak.

use std::error::Error;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::limits::{MAX_HTTP2_STREAMS, MAX_REQUEST_HEAD_BYTES};
use crate::tls::{self, Tls};

/// The TCP peer of the connection a request came on, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The `:protocol` pseudo-header of an HTTP/2 extended CONNECT (RFC 8441), which
/// hyper keeps among a request's extensions rather than its headers.
pub fn extended_connect_protocol(extensions: &http::Extensions) -> Option<&str> {
    extensions
        .get::<hyper::ext::Protocol>()
        .map(hyper::ext::Protocol::as_str)
}

type BoxError = Box<dyn Error + Send + Sync>;

/// How [`serve`] serves.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// The time for each request head (and for a TLS handshake).
    pub head_timeout: Duration,
    /// With `--tls`, the certificate; HTTP/2 is offered beside HTTP/1.1.
    pub tls: Option<&'a Tls>,
    /// Whether the server tells HTTP/2 clients they may open WebSockets with an
    /// extended CONNECT (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC 8441): only if the
    /// framework's WebSocket upgrade takes one. Without it a browser opens its
    /// WebSockets on an HTTP/1.1 connection of their own.
    pub websockets_over_http2: bool,
}

impl Options<'_> {
    /// The ALPN protocols offered, in the server's order of preference.
    pub const PROTOCOLS: [&'static [u8]; 2] = [tls::HTTP2, tls::HTTP1];
}

// ANCHOR: serve
/// Serves `service` (an axum `Router`, a `warp::service`) on `listener` until `stop`
/// resolves, as `options` say; then waits for the requests in flight (event streams
/// end when the app's shutdown is triggered).
///
/// # Errors
///
/// A certificate rustls refuses. A failed accept is logged and the loop goes on, as a
/// server must when it runs out of file descriptors for a moment.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    options: Options<'_>,
    stop: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let acceptor = match options.tls {
        Some(tls) => Some(tls.acceptor(&Options::PROTOCOLS)?),
        None => None,
    };
    let head_timeout = options.head_timeout;
    let websockets_over_http2 = options.websockets_over_http2;
    // Every connection's task holds a receiver of `stopping` (to hear the stop) and
    // of `running` (so that `closed()` tells when the last task has ended).
    let (stop_all, stopping) = watch::channel(());
    let (running, _) = watch::channel(());
    let mut stop = pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(service.clone());
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            service.call(request)
        });
        let stopping = stopping.clone();
        let still_running = running.subscribe();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _still_running = still_running;
            let result = match acceptor {
                None => serve_http1(TokioIo::new(stream), service, head_timeout, stopping).await,
                Some(acceptor) => match tls::accept(&acceptor, stream, head_timeout).await {
                    Err(error) => {
                        tracing::debug!(%error, %peer, "no TLS connection");
                        return;
                    }
                    Ok(stream) if stream.get_ref().1.alpn_protocol() == Some(tls::HTTP2) => {
                        let mut builder =
                            hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                        builder
                            .timer(TokioTimer::new())
                            .max_concurrent_streams(MAX_HTTP2_STREAMS)
                            .max_header_list_size(MAX_REQUEST_HEAD_BYTES as u32);
                        if websockets_over_http2 {
                            builder.enable_connect_protocol();
                        }
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        until_stopped(connection, stopping, |connection| {
                            connection.graceful_shutdown();
                        })
                        .await
                    }
                    Ok(stream) => {
                        serve_http1(TokioIo::new(stream), service, head_timeout, stopping).await
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    // Stop accepting (the listener goes with this function), tell every connection.
    drop(listener);
    let _ = stop_all.send(());
    running.closed().await;
    Ok(())
}
// ANCHOR_END: serve

/// One HTTP/1.1 connection, each request head within `head_timeout`.
async fn serve_http1<I, S, B>(
    io: I,
    service: S,
    head_timeout: Duration,
    stopping: watch::Receiver<()>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_header_size(MAX_REQUEST_HEAD_BYTES);
    let connection = builder.serve_connection(io, service).with_upgrades();
    until_stopped(connection, stopping, |connection| {
        connection.graceful_shutdown()
    })
    .await
}

/// Drives `connection` until it ends, or until `stopping` changes: then lets it finish
/// the requests in flight (`graceful_shutdown`, hyper's method of that name on each
/// version's connection), and close.
async fn until_stopped<C, E>(
    connection: C,
    mut stopping: watch::Receiver<()>,
    graceful_shutdown: impl FnOnce(std::pin::Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut connection = pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        // The one change there is: to stopping.
        _ = stopping.changed() => {
            graceful_shutdown(connection.as_mut());
            connection.await
        }
    }
}
