//! What every handler of a server can reach, the same in all four.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::Sessions;
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
    /// Who is signed in, with `--auth`.
    pub sessions: Sessions,
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
        let sessions = Sessions::start(&config, &hub);
        Ok(AppState {
            sessions,
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

    /// The checks of a WebSocket upgrade, for any framework: the app crate's refusals
    /// of the handshake ([`crate::refusals::websocket_upgrade`]), then a place among
    /// the long connections ([`AppState::admit`]).
    ///
    /// # Errors
    ///
    /// The refusal to answer with, before any upgrade.
    pub fn admit_upgrade<'a>(
        &self,
        method: &str,
        version: (u8, u8),
        peer: Option<IpAddr>,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> Result<ConnectionSlot, Refusal> {
        if let Some(refusal) =
            crate::refusals::websocket_upgrade(&self.config, method, version, headers.clone())
        {
            return Err(refusal);
        }
        let slot = self.admit(peer, headers)?;
        // Said once per socket, so that a test (and a reader of the log) can tell
        // which sockets shared an HTTP/2 connection.
        if version.0 >= 2 {
            tracing::info!("WebSocket over HTTP/2 (RFC 8441 extended CONNECT)");
        }
        Ok(slot)
    }

    // ANCHOR: post_message
    /// `POST /messages`, for any framework: the refusal to answer (415 unless JSON;
    /// with `--auth`, 403 from another origin, 401 without a session), or the hub's
    /// status and JSON body, the message posted under the session's name with `--auth`.
    ///
    /// # Errors
    ///
    /// The refusal, which the glue answers as it answers every [`Refusal`].
    pub async fn post_message<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
        body: &[u8],
    ) -> Result<(u16, String), Refusal> {
        let content_type = headers
            .clone()
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, value)| std::str::from_utf8(value).ok());
        if let Some(refusal) = crate::refusals::post_content_type(content_type) {
            return Err(refusal);
        }
        let identity = self
            .sessions
            .authenticate_post(&self.config, headers)
            .await?;
        Ok(self.hub.handle_post_as(body, identity.name()).await)
    }
    // ANCHOR_END: post_message
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
