//! A static file server for the built book, on a free port of 127.0.0.1.
//!
//! A browser refuses some things on `file://` URLs (the search index is loaded by a
//! script), so the book is tested the way readers see it: over HTTP. The server
//! remembers every request with the status it answered, so a test can say which
//! request failed even when the browser's console does not.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The path asked for, query included.
    pub path: String,
    /// The status answered: 200, 404 or 405.
    pub status: u16,
}

/// A running static file server. Stops when dropped.
#[derive(Debug)]
pub struct StaticFiles {
    addr: SocketAddr,
    served: Arc<Mutex<Vec<Served>>>,
    stopping: Arc<AtomicBool>,
}

impl StaticFiles {
    /// Serves the files under `root` (a folder's `index.html` for the folder) on a
    /// free port of 127.0.0.1.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub fn serve(root: &Path) -> std::io::Result<StaticFiles> {
        StaticFiles::serve_on(root, "127.0.0.1:0")
    }

    /// Like [`StaticFiles::serve`], on the given address (`cargo xtask run-all`
    /// serves the book on a fixed port).
    ///
    /// # Errors
    ///
    /// When the address cannot be bound (a port already in use, say).
    pub fn serve_on(root: &Path, address: &str) -> std::io::Result<StaticFiles> {
        let listener = TcpListener::bind(address)?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let (log, stop) = (Arc::clone(&served), Arc::clone(&stopping));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, log) = (root.clone(), Arc::clone(&log));
                std::thread::spawn(move || serve_one(stream, &root, &log));
            }
        });
        Ok(StaticFiles {
            addr,
            served,
            stopping,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order answered.
    pub fn served(&self) -> Vec<Served> {
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StaticFiles {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Answers one request (`Connection: close`).
fn serve_one(mut stream: TcpStream, root: &Path, log: &Mutex<Vec<Served>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < 65_536 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let (status, content_type, body) = if method != "GET" && method != "HEAD" {
        (405, "text/plain", b"method not allowed\n".to_vec())
    } else {
        match resolve(root, path).and_then(|file| Some((std::fs::read(&file).ok()?, file))) {
            Some((body, file)) => (200, content_type(&file), body),
            None => (404, "text/plain", b"not found\n".to_vec()),
        }
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Served {
            path: path.to_owned(),
            status,
        });
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(&body);
    }
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

/// The `Content-Type` for a file of the book, by its extension.
pub fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("txt" | "md" | "rs") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_files_and_remembers_every_request() {
        let root = std::env::temp_dir().join(format!("wsse-browser-files-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/index.html"), "<p>hi</p>").unwrap();
        let files = StaticFiles::serve(&root).unwrap();
        let get = |path: &str| {
            let mut stream = TcpStream::connect(files.addr).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        };
        let found = get("/sub/");
        assert!(found.starts_with("HTTP/1.1 200 OK"), "{found}");
        assert!(
            found.contains("text/html") && found.ends_with("<p>hi</p>"),
            "{found}"
        );
        assert!(get("/nope.css").starts_with("HTTP/1.1 404"));
        assert!(get("/../etc/passwd").starts_with("HTTP/1.1 404"));
        let statuses: Vec<u16> = files.served().iter().map(|served| served.status).collect();
        assert_eq!(statuses, [200, 404, 404]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
