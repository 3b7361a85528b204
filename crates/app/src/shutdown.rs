//! Stopping cleanly: noticing Ctrl-C or SIGTERM, and telling every connection.
//!
//! There is one mechanism: a [`Shutdown`], a flag that goes from "running" to
//! "stopping" once and never back. Each [`Hub`](crate::hub::Hub) owns one
//! ([`Hub::shutdown_flag`](crate::hub::Hub::shutdown_flag)); triggering it
//! ([`Hub::shut_down`](crate::hub::Hub::shut_down) or [`Shutdown::trigger`]) makes
//! every [`Subscription::next`](crate::hub::Subscription::next) return `None`, so the
//! SSE streams end, and wakes every [`Shutdown::wait`], so the WebSocket glue can
//! close its connections with 1001 (Going Away) and the server stops accepting.
//!
//! ```no_run
//! # async fn example() {
//! let hub = wsse_app::hub::Hub::new();
//! let shutdown = hub.shutdown_flag();
//! shutdown.trigger_on_signal(); // Ctrl-C or SIGTERM flips the flag
//! // ... serve, with graceful shutdown on `shutdown.wait()` ...
//! shutdown.wait().await;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

// ANCHOR: shutdown_signal
/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM
/// (what `docker stop`, systemd and Kubernetes send).
pub async fn shutdown_signal() {
    let control_c = async {
        // If the handler cannot be installed, wait forever rather than stop at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = control_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
// ANCHOR_END: shutdown_signal

// ANCHOR: shutdown
/// A "the server is stopping" flag that can be cloned into every connection.
///
/// A `tokio::sync::watch` channel holds the flag: unlike a broadcast message, its
/// value stays, so a connection that starts waiting after the trigger still sees it.
///
/// It also counts the connections still open ([`Shutdown::track`]), so that `main`
/// can give them time to finish their close handshakes before the process exits:
/// frameworks stop accepting and finish HTTP requests on their own, but an upgraded
/// WebSocket or a long SSE response is a task they no longer wait for.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    open_connections: Arc<watch::Sender<usize>>,
}

/// Counts one open connection until dropped; see [`Shutdown::track`].
#[derive(Debug)]
pub struct ConnectionGuard {
    open_connections: Arc<watch::Sender<usize>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open_connections.send_modify(|count| *count -= 1);
    }
}

impl Shutdown {
    /// A flag that is not triggered yet.
    pub fn new() -> Self {
        Shutdown {
            sender: Arc::new(watch::Sender::new(false)),
            open_connections: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Counts a connection as open until the guard is dropped. Hold it for as long as
    /// the connection's task runs.
    pub fn track(&self) -> ConnectionGuard {
        self.open_connections.send_modify(|count| *count += 1);
        ConnectionGuard {
            open_connections: self.open_connections.clone(),
        }
    }

    /// Waits until every tracked connection has ended, or `limit` has passed.
    /// Returns how many were still open.
    pub async fn connections_closed(&self, limit: std::time::Duration) -> usize {
        let mut receiver = self.open_connections.subscribe();
        let _ = tokio::time::timeout(limit, receiver.wait_for(|count| *count == 0)).await;
        *self.open_connections.borrow()
    }

    /// Flips the flag; every clone sees it. Triggering twice is harmless.
    pub fn trigger(&self) {
        // `send_replace` stores the value even when no one is waiting right now.
        self.sender.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called on this flag or one of its clones.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once the flag is triggered (at once if it already is).
    pub async fn wait(&self) {
        self.wait_owned().await;
    }

    /// Like [`Shutdown::wait`], but the future owns what it needs, so it can be
    /// stored or passed to a framework that wants a `'static` future.
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // An error would mean the sender is gone, but this future keeps none alive
            // on purpose; a dropped sender can only come after every `Shutdown` is gone.
            let _ = receiver.wait_for(|stopping| *stopping).await;
        }
    }

    /// Spawns a task that triggers the flag on Ctrl-C or SIGTERM ([`shutdown_signal`]).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn trigger_on_signal(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            shutdown.trigger();
        });
    }
}
// ANCHOR_END: shutdown

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_resolves_after_trigger_on_any_clone() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        let waiter = tokio::spawn({
            let clone = clone.clone();
            async move { clone.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke up")
            .unwrap();
        assert!(clone.is_triggered());
        // Waiting after the trigger returns at once.
        tokio::time::timeout(Duration::from_secs(5), clone.wait())
            .await
            .unwrap();
        shutdown.trigger();
    }

    #[tokio::test]
    async fn connections_closed_waits_for_every_guard() {
        let shutdown = Shutdown::new();
        let first = shutdown.track();
        let second = shutdown.track();
        assert_eq!(
            shutdown.connections_closed(Duration::from_millis(20)).await,
            2
        );
        drop(first);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(second);
        });
        assert_eq!(shutdown.connections_closed(Duration::from_secs(5)).await, 0);
    }
}
