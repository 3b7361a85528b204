//! `cargo xtask cluster`: the app as it runs on more than one machine, on this one.
//!
//! Two instances of the app (two of the four servers, axum and warp unless
//! `--servers` names others), each on a free port of 127.0.0.1, share one Redis
//! (`--redis URL`), so that a chat message sent to one reaches the clients of the
//! other; nginx in front of both, configured by the book's `deploy/nginx/wsse.conf`,
//! ends TLS and hands each new connection to the next instance (round robin),
//! skipping one that refuses connections. Redis and nginx are the test kit's
//! [`RedisServer`] and [`Nginx`], the very ones the tests run.
//!
//! Runs until SIGINT (Ctrl-C) or SIGTERM, then stops nginx, the instances (SIGTERM,
//! then SIGKILL after a while; see [`crate::servers`]) and Redis. An instance that
//! exits by itself is reported and the other keeps serving (kill one to watch nginx
//! send everyone to the other); when none is left, or when nginx or Redis exits,
//! everything stops with a failure.

use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::time::Duration;

use wsse_testkit::nginx::{self, Nginx};
use wsse_testkit::redis::{self, RedisServer};

use crate::process::{cargo, describe, run_streamed, workspace_root};
use crate::servers::{
    Running, STOP_TIMEOUT, Server, Stopped, start_server, stop_on_signal, stop_servers,
    wait_for_stop,
};

/// The servers `--servers` names when it is not given: two different frameworks.
pub const DEFAULT_SERVERS: &str = "axum,warp";

/// How many lines of Redis's log to show when it exits by itself.
const LOG_TAIL_LINES: usize = 10;

/// `cargo xtask cluster --servers FIRST,SECOND`: builds the two examples and runs
/// the cluster.
pub fn run(server_names: &[String]) -> ExitCode {
    if server_names.len() != 2 {
        eprintln!(
            "xtask: --servers takes two servers, like {DEFAULT_SERVERS}; got {}",
            server_names.len()
        );
        return ExitCode::FAILURE;
    }
    let missing = [
        redis::missing_program().map(|reason| (reason, redis::INSTALL_COMMAND)),
        nginx::missing_programs().map(|reason| (reason, nginx::INSTALL_COMMAND)),
    ];
    let mut any_missing = false;
    for (reason, install_command) in missing.into_iter().flatten() {
        eprintln!("xtask: {reason}; install it with: {install_command}");
        any_missing = true;
    }
    if any_missing {
        return ExitCode::FAILURE;
    }

    let mut build = cargo(["build"]);
    for name in server_names {
        build.args(["--example", name]);
    }
    match run_streamed(&mut build) {
        Ok(status) if status.success() => {}
        _ => {
            eprintln!("xtask: `{}` failed", describe(&build));
            return ExitCode::FAILURE;
        }
    }

    let examples = workspace_root().join("target/debug/examples");
    let instances = server_names
        .iter()
        .enumerate()
        .map(|(index, name)| Server {
            name: name.clone(),
            title: format!("instance {}", index + 1),
            command: Command::new(examples.join(name)),
        })
        .collect();
    serve(instances, STOP_TIMEOUT)
}

/// Starts Redis, the `instances` and nginx in front of them, prints where they are,
/// and runs until SIGINT or SIGTERM; then stops them all and exits 0. What exits by
/// itself is reported; see the module's documentation for what then happens.
pub fn serve(instances: Vec<Server>, stop_timeout: Duration) -> ExitCode {
    // Before anything starts, so that no signal can come too early to be forwarded.
    let stop_requested = match stop_on_signal() {
        Ok(receiver) => receiver,
        Err(error) => {
            eprintln!("xtask: cannot listen for SIGINT and SIGTERM: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut redis = match RedisServer::start() {
        Ok(redis) => redis,
        Err(error) => {
            eprintln!("xtask: Redis did not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (mut running, upstreams) = match start_instances(instances, &redis.url(), stop_timeout) {
        Ok(started) => started,
        Err(error) => {
            eprintln!("xtask: {error}; stopped everything else");
            return ExitCode::FAILURE;
        }
    };
    let mut proxy = match Nginx::start(&upstreams) {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!("xtask: nginx did not start: {error}");
            stop_servers(&mut running, stop_timeout);
            return ExitCode::FAILURE;
        }
    };

    println!();
    println!("| what | where |");
    println!("|---|---|");
    println!(
        "| the app, through nginx: open this in two tabs | http://{}/ |",
        proxy.plain_addr()
    );
    println!(
        "| the same over TLS (a self-signed certificate, {}: accept the browser's \
         warning, or `curl --cacert` it) | {}/ |",
        proxy.certificate().display(),
        proxy.origin()
    );
    for Running { server, url, child } in &running {
        println!(
            "| {}: {} (pid {}), `--redis {} --trust-proxy` | {url}/ |",
            server.title,
            server.name,
            child.id(),
            redis.url()
        );
    }
    println!(
        "| Redis (pid {}), no persistence | {} |",
        redis.pid(),
        redis.url()
    );
    println!();
    println!(
        "nginx hands each new connection to the next instance; `kill PID` one of them \
         to watch the other take over. Ctrl-C stops everything."
    );

    let redis_url = redis.url();
    let outcome = wait_for_stop(
        &mut running,
        &stop_requested,
        |report| eprintln!("xtask: {report}"),
        || {
            if let Ok(Some(status)) = proxy.try_wait() {
                return Some(format!(
                    "nginx exited by itself ({status}); its error log:\n{}",
                    proxy.error_log()
                ));
            }
            if let Ok(Some(status)) = redis.try_wait() {
                return Some(format!(
                    "Redis ({redis_url}) exited by itself ({status}); the end of its log:\n{}",
                    last_lines(&redis.log(), LOG_TAIL_LINES)
                ));
            }
            None
        },
    );
    // The front door first, so that no new connection reaches an instance that stops.
    drop(proxy);
    stop_servers(&mut running, stop_timeout);
    drop(redis);
    match outcome {
        Stopped::BySignal => ExitCode::SUCCESS,
        Stopped::NoServerLeft | Stopped::OtherEnded => ExitCode::FAILURE,
    }
}

/// Starts every instance on a free port with `--redis redis_url --trust-proxy`
/// (trusted, since only nginx is meant to reach them), and returns them with their
/// addresses. When one does not start, stops those that did.
fn start_instances(
    instances: Vec<Server>,
    redis_url: &str,
    stop_timeout: Duration,
) -> Result<(Vec<Running>, Vec<SocketAddr>), String> {
    let mut running = Vec::new();
    let mut addresses = Vec::new();
    for mut server in instances {
        server.command.args([
            "--addr",
            "127.0.0.1:0",
            "--redis",
            redis_url,
            "--trust-proxy",
        ]);
        let label = format!("{} ({})", server.title, server.name);
        let (url, child) = match start_server(&mut server.command) {
            Ok(started) => started,
            Err(error) => {
                stop_servers(&mut running, stop_timeout);
                return Err(format!("{label} did not start: {error}"));
            }
        };
        let address = url
            .strip_prefix("http://")
            .and_then(|address| address.parse().ok());
        let problem = format!("{label} printed `listening on {url}`, not http://IP:PORT");
        running.push(Running { server, url, child });
        match address {
            Some(address) => addresses.push(address),
            None => {
                stop_servers(&mut running, stop_timeout);
                return Err(problem);
            }
        }
    }
    Ok((running, addresses))
}

/// The last `count` lines of `text`.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::testing::{fake_server, is_alive, pid_in, test_directory};

    #[test]
    fn an_instance_that_does_not_start_stops_the_one_that_did() {
        let directory = test_directory("cluster", "refused-option");
        let first = fake_server("first", &directory.join("first.pid"), "", "sleep 60");
        // Like a server that does not know --redis yet: clap's message, status 2.
        let mut second = Command::new("sh");
        second.args([
            "-c",
            "echo \"error: unexpected argument '$3' found\" >&2; exit 2",
            "sh",
        ]);
        second.stderr(std::process::Stdio::null());
        let second = Server {
            name: "second".to_owned(),
            title: "instance 2".to_owned(),
            command: second,
        };
        let error = match start_instances(
            vec![first, second],
            "redis://127.0.0.1:1",
            Duration::from_secs(2),
        ) {
            Ok(_) => panic!("the second instance cannot start"),
            Err(error) => error,
        };
        assert_eq!(
            error,
            "instance 2 (second) did not start: \
             it exited (exit status: 2) before printing its `listening on` line"
        );
        let first = pid_in(&directory.join("first.pid"));
        assert!(!is_alive(first), "the first instance ({first}) still runs");
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn instances_get_a_free_port_redis_and_trust_in_the_proxy() {
        let directory = test_directory("cluster", "arguments");
        let arguments = directory.join("arguments");
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!(
                "echo \"$@\" > '{}'; echo 'listening on http://127.0.0.1:4321'; exec sleep 60",
                arguments.display()
            ),
            "sh",
        ]);
        let instance = Server {
            name: "echo".to_owned(),
            title: "instance 1".to_owned(),
            command,
        };
        let (mut running, addresses) = start_instances(
            vec![instance],
            "redis://127.0.0.1:6379",
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(addresses, ["127.0.0.1:4321".parse().unwrap()]);
        assert_eq!(
            std::fs::read_to_string(&arguments).unwrap(),
            "--addr 127.0.0.1:0 --redis redis://127.0.0.1:6379 --trust-proxy\n"
        );
        stop_servers(&mut running, Duration::from_secs(2));
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("one\ntwo\nthree\n", 2), "two\nthree");
        assert_eq!(last_lines("one", 5), "one");
    }
}
