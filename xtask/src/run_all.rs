//! `cargo xtask run-all`: everything at once, so a reader can open a chapter and
//! try the live demo next to it.
//!
//! Builds the examples and the book, starts every server on its default port,
//! serves the book, prints where everything is, and runs until Ctrl-C (which the
//! terminal delivers to the servers too, so each shuts down cleanly).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use crate::process::{cargo, describe, run_streamed, workspace_root};

/// Where the book is served.
const BOOK_ADDRESS: &str = "127.0.0.1:3000";

/// Every server of the book, with its chapter; each listens on its default port.
const SERVERS: &[(&str, &str)] = &[
    ("axum", "The app on axum"),
    ("actix", "The app on actix-web"),
    ("warp", "The app on warp"),
    ("scratch", "The app from scratch"),
];

pub fn run() -> ExitCode {
    let mut build = cargo(["build", "--examples"]);
    match run_streamed(&mut build) {
        Ok(status) if status.success() => {}
        _ => {
            eprintln!("xtask: `{}` failed", describe(&build));
            return ExitCode::FAILURE;
        }
    }
    let problems = crate::book::build();
    for problem in &problems {
        eprintln!("book: {problem}");
    }

    let examples = workspace_root().join("target/debug/examples");
    let mut running: Vec<(&str, &str, String, Child)> = Vec::new();
    for (name, chapter) in SERVERS {
        let binary = examples.join(name);
        if !binary.exists() {
            continue; // not written yet
        }
        match start_server(&binary) {
            Ok((url, child)) => running.push((name, chapter, url, child)),
            Err(error) => eprintln!("xtask: {name} did not start: {error}"),
        }
    }

    let book = match TcpListener::bind(BOOK_ADDRESS) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("xtask: cannot serve the book on {BOOK_ADDRESS}: {error}");
            stop(&mut running);
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!("| what | where |");
    println!("|---|---|");
    println!("| the book | http://{BOOK_ADDRESS}/ |");
    for (name, chapter, url, _) in &running {
        println!("| {chapter} (`cargo run --example {name}`) | {url}/ |");
    }
    println!();
    println!("Ctrl-C stops everything.");

    let root = crate::book::output_dir();
    for stream in book.incoming().flatten() {
        let root = root.clone();
        std::thread::spawn(move || serve_file(stream, &root));
    }
    stop(&mut running);
    ExitCode::SUCCESS
}

/// Starts a server binary with its default address and waits for its
/// `listening on` line.
fn start_server(binary: &Path) -> std::io::Result<(String, Child)> {
    let mut child = Command::new(binary).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Ok((url.to_owned(), child)),
        None => {
            let _ = child.kill();
            Err(std::io::Error::other(format!(
                "expected `listening on`, got {line:?} (is the port taken?)"
            )))
        }
    }
}

fn stop(running: &mut [(&str, &str, String, Child)]) {
    for (_, _, _, child) in running {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A static file server for the built book: enough for a browser on loopback.
fn serve_file(mut stream: TcpStream, root: &Path) {
    let mut request = [0u8; 4096];
    let Ok(count) = stream.read(&mut request) else {
        return;
    };
    let head = String::from_utf8_lossy(&request[..count]);
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/");
    let response = match resolve(root, path)
        .and_then(|file| Some((std::fs::read(&file).ok()?, file)))
    {
        Some((body, file)) => {
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content_type(&file),
                body.len()
            )
            .into_bytes();
            response.extend_from_slice(&body);
            response
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
                .to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

/// The file for a URL path inside `root`, refusing `..` so nothing outside is served.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let path = url_path.split(['?', '#']).next().unwrap_or("/");
    let relative = Path::new(path.trim_start_matches('/'));
    if relative
        .components()
        .any(|component| !matches!(component, Component::Normal(_)))
    {
        return None;
    }
    let mut file = root.join(relative);
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_the_root_only() {
        let root = std::env::temp_dir().join(format!("xtask-serve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("app/protocol.html"), "protocol").unwrap();
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(
            resolve(&root, "/app/protocol.html#routes"),
            Some(root.join("app/protocol.html"))
        );
        assert_eq!(resolve(&root, "/../etc/passwd"), None);
        assert_eq!(resolve(&root, "/missing.html"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
