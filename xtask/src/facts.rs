//! The numbers and versions the book's prose states, computed from the code, so
//! that none of them is typed by hand and left behind when the code changes.
//!
//! `cargo xtask book` writes each one to `book/src/generated/facts/NAME.txt`,
//! without a line end, so a page can include it in the middle of a sentence:
//! `the {{#include ../generated/facts/scenario-count.txt}} scenarios`.

use std::path::Path;
use std::time::Duration;

use wsse_app::messages::{
    MAX_CONTENT_CHARS, MAX_ECHO_MESSAGE_BYTES, MAX_NAME_CHARS, MAX_WEBSOCKET_MESSAGE_BYTES,
};
use wsse_app::{Config, HubOptions, sse};
use wsse_clients::BackoffPolicy;

use crate::process::workspace_root;

/// A fact's value, or why it could not be computed.
type Value = Result<String, String>;

/// Every fact: its file name under `book/src/generated/facts/` (without `.txt`)
/// and its value.
pub fn compute() -> Vec<(&'static str, Value)> {
    let lock = Lockfile::read();
    let version = |path: &[&str]| lock.as_ref().map_err(Clone::clone)?.version(path);
    let defaults = Config::try_parse_from_with_default(["server"], "127.0.0.1:0")
        .map_err(|error| format!("the servers' command line: {error}"));
    // One default of the servers' command line, as the book shows it.
    let default = |value: fn(&Config) -> String| defaults.as_ref().map(value).map_err(Clone::clone);
    let backoff = BackoffPolicy::DEFAULT;
    vec![
        (
            "scenario-count",
            Ok(wsse_testkit::scenarios::all().len().to_string()),
        ),
        (
            "autobahn-case-count",
            Ok(crate::autobahn::CASE_COUNT.to_string()),
        ),
        (
            "autobahn-compression-case-count",
            Ok(crate::autobahn::COMPRESSION_CASE_COUNT.to_string()),
        ),
        // The frameworks the root package's examples use, and what they are built on.
        ("version-axum", version(&["axum"])),
        ("version-actix-web", version(&["actix-web"])),
        ("version-actix-ws", version(&["actix-ws"])),
        ("version-actix-http", version(&["actix-ws", "actix-http"])),
        ("version-warp", version(&["warp"])),
        (
            "version-axum-tungstenite",
            version(&["axum", "tokio-tungstenite", "tungstenite"]),
        ),
        (
            "version-warp-tokio-tungstenite",
            version(&["warp", "tokio-tungstenite"]),
        ),
        (
            "version-warp-tungstenite",
            version(&["warp", "tokio-tungstenite", "tungstenite"]),
        ),
        (
            "version-clients-tokio-tungstenite",
            version(&["wsse-clients", "tokio-tungstenite"]),
        ),
        ("tungstenite-read-buffer", tungstenite_read_buffer(&lock)),
        // The servers' defaults and limits (crates/app).
        (
            "heartbeat-default-secs",
            default(|config| config.heartbeat.to_string()),
        ),
        (
            "write-timeout-default-secs",
            default(|config| config.write_timeout.to_string()),
        ),
        (
            "request-head-timeout-default-secs",
            default(|config| config.request_head_timeout.to_string()),
        ),
        (
            "message-rate-default",
            default(|config| config.message_rate.to_string()),
        ),
        (
            "message-burst-default",
            default(|config| config.message_burst.to_string()),
        ),
        (
            "max-connections-default",
            default(|config| config.max_connections.to_string()),
        ),
        (
            "max-connections-per-address-default",
            default(|config| config.max_connections_per_address.to_string()),
        ),
        (
            "token-interval-default-ms",
            default(|config| config.token_interval_ms.to_string()),
        ),
        // Sign-in with --auth (crates/app/src/auth.rs).
        (
            "ticket-lifetime",
            Ok(format_duration(wsse_app::auth::TICKET_LIFETIME)),
        ),
        (
            "session-lifetime-hours",
            Ok((wsse_app::auth::SESSION_LIFETIME.as_secs() / 3600).to_string()),
        ),
        ("max-sessions", Ok(wsse_app::auth::MAX_SESSIONS.to_string())),
        (
            "session-check-interval",
            Ok(format_duration(
                wsse_app::redis_sessions::SESSION_CHECK_INTERVAL,
            )),
        ),
        (
            "session-ended-code",
            Ok(wsse_app::connection::SESSION_ENDED.code.0.to_string()),
        ),
        // The SSE clients' liveness timeout (crates/app/src/sse.rs).
        (
            "liveness-timeout-heartbeats",
            Ok(sse::LIVENESS_TIMEOUT_HEARTBEATS.to_string()),
        ),
        (
            "liveness-timeout-default-secs",
            Ok(sse::liveness_timeout(sse::DEFAULT_HEARTBEAT_INTERVAL)
                .as_secs_f64()
                .to_string()),
        ),
        (
            "history-capacity",
            Ok(HubOptions::DEFAULT_HISTORY_CAPACITY.to_string()),
        ),
        ("max-name-chars", Ok(MAX_NAME_CHARS.to_string())),
        (
            "max-chat-fragments",
            Ok(wsse_app::limits::MAX_CHAT_FRAGMENTS.to_string()),
        ),
        ("max-content-chars", Ok(MAX_CONTENT_CHARS.to_string())),
        (
            "max-websocket-message",
            Ok(format_size(MAX_WEBSOCKET_MESSAGE_BYTES)),
        ),
        ("max-echo-message", Ok(format_size(MAX_ECHO_MESSAGE_BYTES))),
        // The reconnecting chat client's backoff (crates/clients).
        ("backoff-start", Ok(format_duration(backoff.start))),
        ("backoff-cap", Ok(format_duration(backoff.cap))),
        (
            "backoff-healthy-after",
            Ok(format_duration(backoff.healthy_after)),
        ),
        // The chat shared through Redis (crates/app/src/redis_hub.rs) and presence.
        (
            "presence-interval",
            Ok(format_duration(wsse_app::hub::PRESENCE_INTERVAL)),
        ),
        (
            "instance-ttl",
            Ok(format_duration(wsse_app::redis_hub::INSTANCE_TTL)),
        ),
        (
            "publish-timeout",
            Ok(format_duration(wsse_app::redis_hub::PUBLISH_TIMEOUT)),
        ),
        (
            "dead-instance-bound",
            Ok(format_duration(
                wsse_app::redis_hub::INSTANCE_TTL + wsse_app::hub::PRESENCE_INTERVAL * 2,
            )),
        ),
        (
            "failover-test-messages",
            source_constant("tests/cluster_failover.rs", "MESSAGES"),
        ),
        // What tests/resume_under_faults.rs puts the clients through.
        (
            "resume-test-messages",
            source_constant("tests/resume_under_faults.rs", "MESSAGES"),
        ),
        (
            "resume-test-minimum-cuts",
            source_constant("tests/resume_under_faults.rs", "MINIMUM_CUTS"),
        ),
    ]
}

/// Writes each fact to `directory/NAME.txt` (no line end), leaving a file that
/// already says the same untouched; returns the problems.
pub fn write(directory: &Path) -> Vec<String> {
    if let Err(error) = std::fs::create_dir_all(directory) {
        return vec![format!("{}: {error}", directory.display())];
    }
    let mut problems = Vec::new();
    for (name, value) in compute() {
        match value {
            Ok(value) if !value.trim().is_empty() && !value.contains('\n') => {
                let path = directory.join(format!("{name}.txt"));
                let unchanged = std::fs::read(&path).is_ok_and(|old| old == value.as_bytes());
                if !unchanged && let Err(error) = std::fs::write(&path, &value) {
                    problems.push(format!("{}: {error}", path.display()));
                }
            }
            Ok(value) => problems.push(format!("the fact {name} is not one line: {value:?}")),
            Err(error) => problems.push(format!("the fact {name}: {error}")),
        }
    }
    problems
}

/// tungstenite's default read buffer, which every axum and warp WebSocket
/// connection allocates. Read from the tungstenite this crate links, which must be
/// the one axum uses.
fn tungstenite_read_buffer(lock: &Result<Lockfile, String>) -> Value {
    let lock = lock.as_ref().map_err(Clone::clone)?;
    let axums = lock.version(&["axum", "tokio-tungstenite", "tungstenite"])?;
    let ours = lock.version(&["xtask", "tungstenite"])?;
    if ours != axums {
        return Err(format!(
            "xtask links tungstenite {ours} but axum uses {axums}: change xtask/Cargo.toml"
        ));
    }
    let config = tungstenite::protocol::WebSocketConfig::default();
    Ok(format_size(config.read_buffer_size))
}

/// `Cargo.lock`, parsed.
struct Lockfile {
    packages: Vec<toml::Table>,
}

impl Lockfile {
    fn read() -> Result<Lockfile, String> {
        let path = workspace_root().join("Cargo.lock");
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        Lockfile::parse(&text)
    }

    fn parse(text: &str) -> Result<Lockfile, String> {
        let table: toml::Table = text
            .parse()
            .map_err(|error| format!("Cargo.lock: {error}"))?;
        let packages = table
            .get("package")
            .and_then(toml::Value::as_array)
            .ok_or("Cargo.lock has no [[package]]")?
            .iter()
            .filter_map(|package| package.as_table().cloned())
            .collect();
        Ok(Lockfile { packages })
    }

    /// The version of the package reached by following `path` from the root
    /// package (`wsse`), one dependency at a time: `["axum", "tokio-tungstenite"]`
    /// is the tokio-tungstenite that axum depends on. A path that starts with a
    /// workspace member's name (`xtask`) starts from that member instead.
    fn version(&self, path: &[&str]) -> Value {
        let (mut package, rest) = match path {
            [first, rest @ ..] if self.is_member(first) => (self.package(first, None)?, rest),
            _ => (self.package("wsse", None)?, path),
        };
        for name in rest {
            package = self.dependency(package, name)?;
        }
        field(package, "version").map(|version| {
            // Drop build metadata (`1.2.1+spec-1.1.0`): the version is what a reader looks up.
            version.split('+').next().unwrap_or(version).to_owned()
        })
    }

    fn is_member(&self, name: &str) -> bool {
        self.packages
            .iter()
            .any(|package| field(package, "name") == Ok(name) && !package.contains_key("source"))
    }

    /// The package called `name` (of `version`, when the lock holds several).
    fn package(&self, name: &str, version: Option<&str>) -> Result<&toml::Table, String> {
        let mut found = self.packages.iter().filter(|package| {
            field(package, "name") == Ok(name)
                && version.is_none_or(|version| field(package, "version") == Ok(version))
        });
        match (found.next(), found.next()) {
            (Some(package), None) => Ok(package),
            (None, _) => Err(format!(
                "Cargo.lock has no {name} {}",
                version.unwrap_or("")
            )),
            (Some(_), Some(_)) => Err(format!("Cargo.lock has several {name}")),
        }
    }

    /// The package that `package` depends on under the name `name`. The lock
    /// writes a dependency as `name`, or `name version` when it holds several
    /// versions of it.
    fn dependency(&self, package: &toml::Table, name: &str) -> Result<&toml::Table, String> {
        let from = field(package, "name")?;
        let entry = package
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            .find(|entry| entry.split(' ').next() == Some(name))
            .ok_or_else(|| format!("{from} does not depend on {name} in Cargo.lock"))?;
        self.package(name, entry.split(' ').nth(1))
    }
}

fn field<'a>(package: &'a toml::Table, key: &str) -> Result<&'a str, String> {
    package
        .get(key)
        .and_then(toml::Value::as_str)
        .ok_or_else(|| format!("a package in Cargo.lock has no {key}"))
}

/// The value of `const NAME: TYPE = NUMBER;` in a source file of the workspace,
/// for the constants of integration tests, which no other crate can name.
fn source_constant(relative_path: &str, name: &str) -> Value {
    let path = workspace_root().join(relative_path);
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let declaration = format!("const {name}:");
    // `const`, `pub const` or `pub(crate) const`.
    let declares = |line: &&str| {
        line.split_once(&declaration)
            .is_some_and(|(before, _)| before.is_empty() || before.starts_with("pub"))
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(declares)
        .ok_or_else(|| format!("no `{declaration}` in {relative_path}"))?;
    let value = line
        .split_once('=')
        .map(|(_, value)| value.trim().trim_end_matches(';').replace('_', ""))
        .unwrap_or_default();
    value
        .parse::<u64>()
        .map(|number| number.to_string())
        .map_err(|_| format!("{name} in {relative_path} is not a plain number: {line}"))
}

/// Bytes as a reader writes them: `64 KiB`, `16 MiB`, `300 bytes`.
fn format_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match bytes {
        0 => "0 bytes".to_owned(),
        _ if bytes.is_multiple_of(MIB) => format!("{} MiB", bytes / MIB),
        _ if bytes.is_multiple_of(KIB) => format!("{} KiB", bytes / KIB),
        _ => format!("{bytes} bytes"),
    }
}

/// A duration as a reader writes it: `250 ms`, `10 s`.
fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::workspace_root;

    /// The facts the book's pages include, by name: `generated/facts/NAME.txt`.
    fn names_the_book_includes() -> Vec<String> {
        let mut names = Vec::new();
        let mut pending = vec![workspace_root().join("book/src")];
        while let Some(directory) = pending.pop() {
            for entry in std::fs::read_dir(&directory).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|extension| extension == "md") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for target in crate::book::include_targets(&text) {
                        if let Some((_, file)) = target.split_once("generated/facts/") {
                            names.push(file.trim_end_matches(".txt").to_owned());
                        }
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_fact_is_computed_and_one_line() {
        let facts = compute();
        assert!(facts.len() >= 10, "only {} facts", facts.len());
        for (name, value) in &facts {
            let value = value
                .as_ref()
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(!value.trim().is_empty(), "{name} is empty");
            assert!(
                !value.contains('\n'),
                "{name} is more than one line: {value:?}"
            );
        }
    }

    #[test]
    fn every_fact_the_book_includes_is_computed() {
        let computed: Vec<&str> = compute().iter().map(|(name, _)| *name).collect();
        let included = names_the_book_includes();
        assert!(!included.is_empty(), "the book includes no fact");
        for name in included {
            assert!(
                computed.contains(&name.as_str()),
                "the book includes {name}, which no fact computes"
            );
        }
    }

    #[test]
    fn the_scenario_count_is_the_test_kits() {
        let facts = compute();
        let count = facts.iter().find(|(name, _)| *name == "scenario-count");
        assert_eq!(
            count.and_then(|(_, value)| value.clone().ok()),
            Some(wsse_testkit::scenarios::all().len().to_string())
        );
    }

    #[test]
    fn writes_each_fact_without_a_line_end() {
        let directory = std::env::temp_dir().join(format!("xtask-facts-{}", std::process::id()));
        let problems = write(&directory);
        assert!(problems.is_empty(), "{problems:?}");
        let written = std::fs::read_to_string(directory.join("scenario-count.txt"));
        std::fs::remove_dir_all(&directory).ok();
        let written = written.expect("scenario-count.txt is written");
        assert!(
            !written.is_empty() && !written.ends_with('\n'),
            "{written:?}"
        );
    }

    #[test]
    fn follows_dependencies_through_the_lock() {
        let lock = Lockfile::parse(
            r#"
version = 4

[[package]]
name = "wsse"
version = "0.1.0"
dependencies = ["axum", "tungstenite 0.30.0"]

[[package]]
name = "axum"
version = "0.8.9"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = ["tungstenite 0.29.0"]

[[package]]
name = "tungstenite"
version = "0.29.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "tungstenite"
version = "0.30.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#,
        )
        .unwrap();
        assert_eq!(lock.version(&["axum"]), Ok("0.8.9".to_owned()));
        assert_eq!(
            lock.version(&["axum", "tungstenite"]),
            Ok("0.29.0".to_owned())
        );
        assert_eq!(lock.version(&["tungstenite"]), Ok("0.30.0".to_owned()));
        assert_eq!(lock.version(&["wsse", "axum"]), Ok("0.8.9".to_owned()));
        assert!(lock.version(&["warp"]).is_err());
    }

    #[test]
    fn writes_sizes_and_durations_as_people_do() {
        assert_eq!(format_size(128 * 1024), "128 KiB");
        assert_eq!(format_size(16 * 1024 * 1024), "16 MiB");
        assert_eq!(format_size(300), "300 bytes");
        assert_eq!(format_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10 s");
    }

    #[test]
    fn reads_a_constant_from_source() {
        assert_eq!(
            source_constant("xtask/src/autobahn.rs", "CASE_COUNT"),
            Ok(crate::autobahn::CASE_COUNT.to_string())
        );
        assert!(source_constant("xtask/src/autobahn.rs", "NO_SUCH_CONSTANT").is_err());
    }
}
