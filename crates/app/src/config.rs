//! The command line every server of the book shares.
//!
//! ```text
//! --addr IP:PORT          where to listen (each server has its own default port)
//! --heartbeat SECS        WebSocket ping / SSE comment interval, default 15, at least 1
//! --token-interval-ms MS  pause between tokens on /stream, default 50
//! --allow-origin ORIGIN   another origin whose pages may connect (repeatable)
//! --ws-buffer-bytes BYTES WebSocket read/write buffer size, where the framework allows
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser};

// ANCHOR: config
/// The servers' settings. Derives [`clap::Args`], so a server can
/// `#[command(flatten)]` it into its own parser, or call [`Config::parse_with_default`].
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<SocketAddr>,

    /// Seconds between WebSocket pings and SSE heartbeat comments.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub heartbeat: u64,

    /// Milliseconds between two tokens on /stream.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub token_interval_ms: u64,

    /// An origin (like http://localhost:8080) whose pages may connect, besides the
    /// server's own. Repeat for more.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,

    /// Read and write buffer of each WebSocket connection, in bytes, where the
    /// framework lets us choose (axum, scratch); without it, the framework's default.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(512..))]
    pub ws_buffer_bytes: Option<u32>,
}
// ANCHOR_END: config

/// The parser around [`Config`] used by [`Config::parse_with_default`].
#[derive(Debug, Parser)]
#[command(about = "A chat over WebSocket and a token stream over Server-Sent Events")]
struct CommandLine {
    #[command(flatten)]
    config: Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: None,
            heartbeat: 15,
            token_interval_ms: 50,
            allow_origin: Vec::new(),
            ws_buffer_bytes: None,
        }
    }
}

impl Config {
    /// Where [`Config::addr`] points when no address was given at all.
    pub const FALLBACK_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);

    /// Parses the process's arguments, with `default_addr` as the `--addr` default
    /// (shown in `--help`). On an error or `--help`, prints and exits, as clap does.
    pub fn parse_with_default(default_addr: &str) -> Config {
        Config::try_parse_from_with_default(std::env::args_os(), default_addr)
            .unwrap_or_else(|error| error.exit())
    }

    /// Like [`Config::parse_with_default`], but from the given arguments (the first is
    /// the program name) and returning the error instead of exiting.
    ///
    /// # Errors
    ///
    /// A [`clap::Error`] for an unknown flag, a bad value, `--help` or `--version`.
    pub fn try_parse_from_with_default<I, T>(
        arguments: I,
        default_addr: &str,
    ) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = CommandLine::command().mut_arg("addr", |argument| {
            argument.default_value(default_addr.to_owned())
        });
        let matches = command.try_get_matches_from(arguments)?;
        Ok(CommandLine::from_arg_matches(&matches)?.config)
    }

    /// The address to listen on: `--addr`, else the default given to
    /// [`Config::parse_with_default`], else [`Config::FALLBACK_ADDR`].
    pub fn addr(&self) -> SocketAddr {
        self.addr.unwrap_or(Self::FALLBACK_ADDR)
    }

    /// `--heartbeat` as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat)
    }

    /// `--token-interval-ms` as a duration.
    pub fn token_interval(&self) -> Duration {
        Duration::from_millis(self.token_interval_ms)
    }

    // ANCHOR: origin_allowed
    /// Whether a request with this `Origin` header may use the chat.
    ///
    /// Browsers send `Origin` with every WebSocket handshake and every cross-site
    /// request, and they let any page open a WebSocket to any server, so without this
    /// check a page on another site could chat in the name of the user who visits it
    /// (cross-site WebSocket hijacking). Allowed are:
    ///
    /// - no `Origin` at all: not a browser (curl, a test client), nothing to protect;
    /// - the server's own origin, `http://` + the `Host` header: our own page;
    /// - one of the `--allow-origin` values, exactly, trailing slash ignored.
    ///
    /// Everything else (including the `null` origin of sandboxed pages and files) is
    /// refused; the glue answers 403 Forbidden.
    pub fn origin_allowed(&self, origin: Option<&str>, own_host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = without_trailing_slash(origin);
        // Scheme and host names are case-insensitive; browsers send them lowercase,
        // but a Host header may not be.
        if let Some(host) = own_host
            && origin.eq_ignore_ascii_case(&format!("http://{host}"))
        {
            return true;
        }
        self.allow_origin
            .iter()
            .any(|allowed| without_trailing_slash(allowed) == origin)
    }
    // ANCHOR_END: origin_allowed
}

fn without_trailing_slash(origin: &str) -> &str {
    origin.strip_suffix('/').unwrap_or(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from_with_default(
            std::iter::once("server").chain(arguments.iter().copied()),
            "127.0.0.1:3001",
        )
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.addr(), "127.0.0.1:3001".parse().unwrap());
        assert_eq!(config.heartbeat_interval(), Duration::from_secs(15));
        assert_eq!(config.token_interval(), Duration::from_millis(50));
        assert!(config.allow_origin.is_empty());
        assert_eq!(config.ws_buffer_bytes, None);
        assert_eq!(Config::default().addr(), Config::FALLBACK_ADDR);
        assert_eq!(
            Config {
                addr: Some("127.0.0.1:3001".parse().unwrap()),
                ..Config::default()
            },
            config
        );
    }

    #[test]
    fn every_flag() {
        let config = parse(&[
            "--addr",
            "0.0.0.0:8080",
            "--heartbeat",
            "1",
            "--token-interval-ms",
            "0",
            "--allow-origin",
            "http://a.test",
            "--allow-origin",
            "http://b.test:81/",
            "--ws-buffer-bytes",
            "4096",
        ])
        .unwrap();
        assert_eq!(config.addr(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.heartbeat, 1);
        assert_eq!(config.token_interval(), Duration::ZERO);
        assert_eq!(config.allow_origin, ["http://a.test", "http://b.test:81/"]);
        assert_eq!(config.ws_buffer_bytes, Some(4096));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--heartbeat", "0"]).is_err());
        assert!(parse(&["--heartbeat", "-1"]).is_err());
        assert!(parse(&["--addr", "localhost"]).is_err());
        assert!(parse(&["--token-interval-ms", "x"]).is_err());
        assert!(parse(&["--unknown"]).is_err());
        assert!(parse(&["--ws-buffer-bytes", "100"]).is_err());
    }

    #[test]
    fn help_shows_the_default_address() {
        let help = parse(&["--help"]).unwrap_err().to_string();
        assert!(help.contains("[default: 127.0.0.1:3001]"), "{help}");
        assert!(help.contains("--allow-origin <ORIGIN>"), "{help}");
    }

    #[test]
    fn origins() {
        let config = parse(&["--allow-origin", "http://trusted.test:8080/"]).unwrap();
        let host = Some("127.0.0.1:3001");
        // No Origin: not a browser.
        assert!(config.origin_allowed(None, host));
        assert!(config.origin_allowed(None, None));
        // Our own page.
        assert!(config.origin_allowed(Some("http://127.0.0.1:3001"), host));
        assert!(config.origin_allowed(Some("http://127.0.0.1:3001/"), host));
        assert!(config.origin_allowed(Some("http://LOCALHOST:3001"), Some("localhost:3001")));
        // The allow-list, trailing slash ignored on both sides, otherwise exact.
        assert!(config.origin_allowed(Some("http://trusted.test:8080"), host));
        assert!(config.origin_allowed(Some("http://trusted.test:8080/"), None));
        assert!(!config.origin_allowed(Some("http://trusted.test:8081"), host));
        assert!(!config.origin_allowed(Some("https://trusted.test:8080"), host));
        // Everything else.
        assert!(!config.origin_allowed(Some("http://evil.test"), host));
        assert!(!config.origin_allowed(Some("https://127.0.0.1:3001"), host));
        assert!(!config.origin_allowed(Some("http://127.0.0.1:3002"), host));
        assert!(!config.origin_allowed(Some("http://127.0.0.1:3001.evil.test"), host));
        assert!(!config.origin_allowed(Some("null"), host));
        assert!(!config.origin_allowed(Some(""), host));
        assert!(!config.origin_allowed(Some("http://127.0.0.1:3001"), None));
    }
}
