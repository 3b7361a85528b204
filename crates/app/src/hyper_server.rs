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

use std::error::Error;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::limits::MAX_REQUEST_HEAD_BYTES;

/// The TCP peer of the connection a request came on, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

type BoxError = Box<dyn Error + Send + Sync>;

// ANCHOR: serve
/// Serves `service` (an axum `Router`, a `warp::service`) on `listener` until `stop`
/// resolves, each request head within `head_timeout`; then waits for the requests in
/// flight (event streams end when the app's shutdown is triggered).
///
/// # Errors
///
/// None yet: a failed accept is logged and the loop goes on, as a server must when it
/// runs out of file descriptors for a moment. The `Result` is the servers' shape.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    head_timeout: Duration,
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
        let mut stopping = stopping.clone();
        let still_running = running.subscribe();
        tokio::spawn(async move {
            let _still_running = still_running;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout)
                .max_header_size(MAX_REQUEST_HEAD_BYTES);
            let mut connection = pin!(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
            );
            let result = tokio::select! {
                result = connection.as_mut() => result,
                // The one change there is: to stopping.
                _ = stopping.changed() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
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
