//! What every handler of a server can reach, the same in all four.

use std::net::IpAddr;
use std::sync::Arc;

use crate::limits::{ConnectionCeiling, ConnectionSlot};
use crate::refusals::Refusal;
use crate::{Config, Hub, Shutdown};

/// The hub, the options, and the shutdown flag every connection watches. Each
/// framework hands a clone to its handlers its own way (axum's `State`, actix's
/// `web::Data`, a warp filter, an argument of the from-scratch server's tasks).
#[derive(Clone)]
pub struct AppState {
    /// The chat.
    pub hub: Hub,
    /// The command line.
    pub config: Arc<Config>,
    /// Triggered once to end every subscription; counts the open connections.
    pub shutdown: Shutdown,
    /// The places for long connections, `--max-connections` of them.
    pub connections: ConnectionCeiling,
}

impl AppState {
    /// Starts the hub `config` asks for (in memory, or on Redis with `--redis`).
    ///
    /// # Errors
    ///
    /// When the hub cannot start (Redis unreachable).
    pub async fn start(config: Config) -> std::io::Result<AppState> {
        let hub = Hub::start(&config).await?;
        let shutdown = hub.shutdown_flag();
        let count = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        let connections = ConnectionCeiling::new(
            count(config.max_connections),
            count(config.max_connections_per_address),
        );
        Ok(AppState {
            hub,
            config: Arc::new(config),
            shutdown,
            connections,
        })
    }

    // ANCHOR: admit
    /// A place under the ceiling for a long connection from `peer` (the TCP peer's
    /// address, if the framework tells it) with these request headers, which name the
    /// client instead when a trusted proxy is in front ([`Config::client_address`]).
    ///
    /// # Errors
    ///
    /// The refusal to answer with: 503 at the ceiling, 429 when the client holds its
    /// share ([`ConnectionCeiling::admit`]).
    pub fn admit<'a>(
        &self,
        peer: Option<IpAddr>,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<ConnectionSlot, Refusal> {
        self.connections
            .admit(self.config.client_address(peer, headers))
    }
    // ANCHOR_END: admit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_shutdown_flag_is_the_hubs() {
        let state = AppState::start(
            Config::try_parse_from_with_default(["server", "--heartbeat", "5"], "127.0.0.1:0")
                .unwrap(),
        )
        .await
        .unwrap();
        let mut subscription = state.hub.subscribe(None);
        state.shutdown.trigger();
        assert!(subscription.next().await.is_none());
        assert_eq!(state.config.heartbeat_interval().as_secs(), 5);
    }
}
