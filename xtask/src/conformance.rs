//! `cargo xtask conformance`: the test kit's scenarios against any server, with
//! the matrix the test suite prints. For the capstone: a learner's fifth server
//! is tested without touching the test code.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use wsse_testkit::scenarios;

pub fn run(url: Option<String>, command: Option<String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conformance: cannot start a Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let all = scenarios::all();
    let matrix = match (url, command) {
        (Some(url), _) => {
            let addr = match parse_url(&url) {
                Ok(addr) => addr,
                Err(error) => {
                    eprintln!("conformance: {error}");
                    return ExitCode::FAILURE;
                }
            };
            println!("conformance: {} scenarios against {url}", all.len());
            runtime.block_on(wsse_testkit::run_matrix_at(&url, addr, &all))
        }
        (None, Some(command)) => {
            let Some((program, args)) = parse_command(&command) else {
                eprintln!("conformance: --command is empty");
                return ExitCode::FAILURE;
            };
            let name = program.file_name().map_or_else(
                || command.clone(),
                |name| name.to_string_lossy().into_owned(),
            );
            println!("conformance: {} scenarios against `{command}`", all.len());
            runtime.block_on(wsse_testkit::run_matrix_command(&name, program, args, &all))
        }
        (None, None) => {
            eprintln!("conformance: give --url http://IP:PORT or --command \"PROGRAM ARGS\"");
            return ExitCode::FAILURE;
        }
    };
    matrix.print();
    if !matrix.skipped.is_empty() {
        println!(
            "(to run the skipped scenarios too, let the suite start your server: \
             cargo xtask conformance --command \"PROGRAM ARGS\")"
        );
    }
    if matrix.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `http://HOST:PORT` (a trailing `/` allowed) as a socket address.
pub fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: expected http://HOST:PORT"))?;
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || !authority.contains(':') {
        return Err(format!(
            "{url}: expected http://HOST:PORT, with no path (the suite knows the routes)"
        ));
    }
    authority
        .to_socket_addrs()
        .map_err(|error| format!("{url}: {error}"))?
        .next()
        .ok_or_else(|| format!("{url}: the host has no address"))
}

/// The program and its arguments, split at whitespace.
pub fn parse_command(command: &str) -> Option<(PathBuf, Vec<String>)> {
    let mut words = command.split_whitespace();
    let program = PathBuf::from(words.next()?);
    Some((program, words.map(str::to_owned).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_and_nothing_more() {
        let expected: SocketAddr = "127.0.0.1:3004".parse().unwrap();
        assert_eq!(parse_url("http://127.0.0.1:3004"), Ok(expected));
        assert_eq!(parse_url("http://127.0.0.1:3004/"), Ok(expected));
        assert!(parse_url("http://localhost:3004").unwrap().port() == 3004);
        for bad in [
            "127.0.0.1:3004",
            "http://127.0.0.1",
            "http://127.0.0.1:3004/ws",
            "ws://a:1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_split_into_program_and_arguments() {
        assert_eq!(
            parse_command("target/debug/mine --quiet  -v"),
            Some((
                PathBuf::from("target/debug/mine"),
                vec!["--quiet".to_owned(), "-v".to_owned()]
            ))
        );
        assert_eq!(parse_command("  "), None);
    }
}
