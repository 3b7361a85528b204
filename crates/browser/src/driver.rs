//! chromedriver and the browser sessions it opens, over WebDriver.
//!
//! WebDriver (W3C) is a small REST protocol: `POST /session` starts a browser and
//! answers with a session id, then `POST /session/ID/url` opens a page,
//! `POST /session/ID/execute/sync` runs a script and returns its JSON result, and so
//! on. Every answer is `{"value": ...}`; an error is `{"value": {"error": ...,
//! "message": ...}}` with a 4xx or 5xx status. Chromium adds one command of its own
//! that the tests need: `POST /session/ID/se/log` returns the console messages and
//! the failed requests logged since the last call, once the session asked for them
//! with the `goog:loggingPrefs` capability.
//!
//! Every browser runs headless with a fresh profile (`--user-data-dir` in a temporary
//! folder, removed afterwards), and with Chromium's own background traffic (updates,
//! sync, safe browsing lists, QUIC probes) turned off: the tests talk to 127.0.0.1
//! only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::Chrome;

/// How long chromedriver may take to say which port it listens on.
const DRIVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one WebDriver command may take (starting a browser is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a wait lasts unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How often a wait polls its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(40);

/// The key under which WebDriver hands over a reference to a DOM element.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The switches every browser gets: headless, no sandbox (tests run as root in
/// containers), no GPU, and none of Chromium's own network traffic.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// A running chromedriver, on a free port of 127.0.0.1.
///
/// It runs in a process group of its own, and every browser it starts joins that
/// group: dropping the `Driver` kills the whole group, so a failing test leaves no
/// Chromium behind.
#[derive(Debug)]
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    chromium: PathBuf,
}

impl Driver {
    /// Starts `chrome.chromedriver --port=0` and waits for the port it picked.
    ///
    /// # Errors
    ///
    /// When it cannot start, or says nothing about a port within 20 seconds.
    pub fn start(chrome: &Chrome) -> Result<Driver, String> {
        use std::os::unix::process::CommandExt;

        let mut child = Command::new(&chrome.chromedriver)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", chrome.chromedriver.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // A thread reads stdout for the driver's whole life (so the pipe never fills)
        // and hands the port over when it sees it.
        let (port_sender, port) = mpsc::channel::<Result<u16, String>>();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut sender = Some(port_sender);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(found) = parse_port_line(&line)
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(Ok(found));
                }
                if sender.is_some() {
                    seen.push(line);
                }
            }
            if let Some(sender) = sender {
                let _ = sender.send(Err(format!(
                    "chromedriver exited without naming its port: {}",
                    seen.join(" / ")
                )));
            }
        });
        let mut driver = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            chromium: chrome.chromium.clone(),
        };
        match port.recv_timeout(DRIVER_STARTUP_TIMEOUT) {
            Ok(Ok(found)) => driver.addr.set_port(found),
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(format!(
                    "chromedriver named no port within {} s",
                    DRIVER_STARTUP_TIMEOUT.as_secs()
                ));
            }
        }
        Ok(driver)
    }

    /// Where chromedriver listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a browser with the default [`SessionOptions`].
    ///
    /// # Errors
    ///
    /// When chromedriver cannot start the browser.
    pub fn session(&self) -> Result<Session, String> {
        self.session_with(&SessionOptions::default())
    }

    /// Opens a browser: headless Chromium with [`CHROMIUM_FLAGS`], a fresh profile,
    /// the console log recorded, and the window size of `options`.
    ///
    /// # Errors
    ///
    /// When chromedriver cannot start the browser.
    pub fn session_with(&self, options: &SessionOptions) -> Result<Session, String> {
        let profile = fresh_profile_dir()?;
        let mut arguments: Vec<String> =
            CHROMIUM_FLAGS.iter().map(|&flag| flag.to_owned()).collect();
        arguments.push(format!("--user-data-dir={}", profile.display()));
        arguments.push(format!(
            "--window-size={},{}",
            options.width, options.height
        ));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "goog:chromeOptions": {
                        "binary": self.chromium,
                        "args": arguments,
                    },
                    // An alert the page opens is refused, not left to block every
                    // later command (the tests replace window.alert to see calls).
                    "unhandledPromptBehavior": "dismiss",
                }
            }
        });
        let answer = match request(self.addr, "POST", "/session", Some(&capabilities)) {
            Ok(answer) => answer,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(format!("chromedriver could not start Chromium: {error}"));
            }
        };
        let id = answer["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {answer}"))?
            .to_owned();
        Ok(Session {
            driver: self.addr,
            id,
            profile,
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) only sends a signal. The negative pid names the process
            // group that `process_group(0)` created for chromedriver (its id is
            // chromedriver's pid, not yet reaped, so not reused): chromedriver and the
            // browsers it started, nothing else.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ChromeDriver was started successfully on port 41235.` gives 41235.
fn parse_port_line(line: &str) -> Option<u16> {
    let rest = line.split("started successfully on port ").nth(1)?;
    rest.trim()
        .trim_end_matches('.')
        .parse()
        .ok()
        .filter(|&port| port != 0)
}

/// A new empty folder for a browser profile.
fn fresh_profile_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let directory = std::env::temp_dir().join(format!(
        "wsse-browser-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory)
        .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    Ok(directory)
}

/// How a browser window is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// The window's width in CSS pixels.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            width: 1280,
            height: 800,
        }
    }
}

/// One line of the browser's console log (Chromium's `se/log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO` or `DEBUG`. A `console.error`, an uncaught
    /// exception and a failed request are `SEVERE`.
    pub level: String,
    /// Where it came from: `console-api`, `javascript`, `network`...
    pub source: String,
    /// The text.
    pub message: String,
}

impl LogEntry {
    /// Whether this is an error (a console error, an exception, a failed request).
    pub fn is_severe(&self) -> bool {
        self.level == "SEVERE"
    }
}

impl std::fmt::Display for LogEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "[{} {}] {}",
            self.level, self.source, self.message
        )
    }
}

/// One browser, through chromedriver. Dropping it closes the browser and removes its
/// profile.
#[derive(Debug)]
pub struct Session {
    driver: SocketAddr,
    id: String,
    profile: PathBuf,
}

impl Session {
    /// Sends one WebDriver command of this session; `path` starts after the session
    /// id (`"/url"`). Returns the answer's `value`.
    ///
    /// # Errors
    ///
    /// A network error, or WebDriver's error and message.
    pub fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        request(
            self.driver,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    /// Opens `url` and waits until it has loaded (the `load` event).
    ///
    /// # Errors
    ///
    /// As for [`Session::command`].
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.command("POST", "/url", Some(&json!({ "url": url })))
            .map(|_| ())
            .map_err(|error| format!("opening {url}: {error}"))
    }

    /// Runs `script` as the body of a function in the page (`arguments[0]`... are
    /// `arguments`) and returns what it returned, as JSON.
    ///
    /// # Errors
    ///
    /// A script that throws, with the exception's message.
    pub fn execute(&self, script: &str, arguments: &[Value]) -> Result<Value, String> {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": arguments })),
        )
    }

    /// The WebDriver reference of the first element matching the CSS `selector`.
    ///
    /// # Errors
    ///
    /// When nothing matches.
    pub fn find(&self, selector: &str) -> Result<String, String> {
        let found = self
            .command(
                "POST",
                "/element",
                Some(&json!({ "using": "css selector", "value": selector })),
            )
            .map_err(|error| format!("finding {selector}: {error}"))?;
        found[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("finding {selector}: no element reference in {found}"))
    }

    /// Types `text` into the element matching `selector`, key by key, as a user would
    /// (after what it already holds).
    ///
    /// # Errors
    ///
    /// When nothing matches, or the element cannot take keys (disabled, hidden).
    pub fn type_text(&self, selector: &str, text: &str) -> Result<(), String> {
        let element = self.find(selector)?;
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({ "text": text })),
        )
        .map(|_| ())
        .map_err(|error| format!("typing into {selector}: {error}"))
    }

    /// Empties the input matching `selector`.
    ///
    /// # Errors
    ///
    /// When nothing matches or the element is not editable.
    pub fn clear(&self, selector: &str) -> Result<(), String> {
        let element = self.find(selector)?;
        self.command(
            "POST",
            &format!("/element/{element}/clear"),
            Some(&json!({})),
        )
        .map(|_| ())
        .map_err(|error| format!("clearing {selector}: {error}"))
    }

    /// Clicks the element matching `selector` (in its middle, as a mouse would).
    ///
    /// # Errors
    ///
    /// When nothing matches, or the element cannot be clicked (hidden, covered).
    pub fn click(&self, selector: &str) -> Result<(), String> {
        let element = self.find(selector)?;
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        )
        .map(|_| ())
        .map_err(|error| format!("clicking {selector}: {error}"))
    }

    /// The `textContent` of the element matching `selector`.
    ///
    /// # Errors
    ///
    /// When nothing matches.
    pub fn text(&self, selector: &str) -> Result<String, String> {
        let text = self.execute(
            "const element = document.querySelector(arguments[0]);
             return element === null ? null : element.textContent;",
            &[json!(selector)],
        )?;
        text.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element matches {selector}"))
    }

    /// Runs `script` every few milliseconds until it returns something truthy (not
    /// `null`, `false`, `0` or `""`), and returns that.
    ///
    /// # Errors
    ///
    /// After `timeout`: `what` did not happen, with the script's last answer. A script
    /// error ends the wait at once.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        arguments: &[Value],
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.execute(script, arguments)?;
            if is_truthy(&answer) {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "waited {:.1} s for {what}; last answer: {answer}",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the `textContent` of `selector` is exactly `expected`.
    ///
    /// # Errors
    ///
    /// After `timeout`, with the text it had.
    pub fn wait_for_text(
        &self,
        selector: &str,
        expected: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_for_text_where(selector, &format!("{expected:?}"), timeout, |text| {
            text == expected
        })
    }

    /// Waits until the `textContent` of `selector` satisfies `check`; `what` says
    /// what was expected, for the error.
    ///
    /// # Errors
    ///
    /// After `timeout`, with the text it had.
    pub fn wait_for_text_where(
        &self,
        selector: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(selector)?;
            if check(&text) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "waited {:.1} s for {selector} to be {what}; it shows {text:?}",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The console messages and failed requests logged since the last call.
    ///
    /// # Errors
    ///
    /// As for [`Session::command`].
    pub fn browser_log(&self) -> Result<Vec<LogEntry>, String> {
        let entries = self.command("POST", "/se/log", Some(&json!({ "type": "browser" })))?;
        let entries = entries
            .as_array()
            .ok_or_else(|| format!("the browser log is not a list: {entries}"))?;
        Ok(entries
            .iter()
            .map(|entry| LogEntry {
                level: entry["level"].as_str().unwrap_or_default().to_owned(),
                source: entry["source"].as_str().unwrap_or_default().to_owned(),
                message: entry["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// A PNG of what the window shows.
    ///
    /// # Errors
    ///
    /// As for [`Session::command`], or an answer that is not base64.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        let encoded = self.command("GET", "/screenshot", None)?;
        let encoded = encoded
            .as_str()
            .ok_or_else(|| "the screenshot is not a string".to_owned())?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| format!("the screenshot is not base64: {error}"))
    }

    /// Writes [`Session::screenshot`] to `path`, creating its folder.
    ///
    /// # Errors
    ///
    /// When the screenshot cannot be taken or written.
    pub fn save_screenshot(&self, path: &Path) -> Result<(), String> {
        let png = self.screenshot()?;
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory)
                .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
        }
        std::fs::write(path, png)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the session quits the browser (chromedriver waits for it).
        let _ = request(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
        );
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// JavaScript's idea of true.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|number| number != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// One WebDriver request: `method path` with a JSON body, on a connection of its own
/// (`Connection: close`). Returns the answer's `value`, or WebDriver's error.
fn request(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect_timeout(&driver, Duration::from_secs(5))
        .map_err(|error| format!("cannot reach chromedriver at {driver}: {error}"))?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|error| error.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {driver}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|error| format!("{method} {path}: {error}"))?;
    // chromedriver keeps the connection open whatever the request says, so the
    // answer ends where its Content-Length (or its last chunk) says.
    let mut response = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while !response_complete(&response) {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => response.extend_from_slice(&buffer[..read]),
            Err(error) => {
                return Err(format!(
                    "{method} {path}: no whole answer within {} s: {error}",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let (status, answer) =
        parse_response(&response).map_err(|error| format!("{method} {path}: {error}"))?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if status == 200 {
        Ok(value)
    } else {
        let message = value["message"].as_str().unwrap_or_default();
        let first_line = message.lines().next().unwrap_or_default();
        Err(format!(
            "{} ({status}): {first_line}",
            value["error"].as_str().unwrap_or("error")
        ))
    }
}

/// Whether `response` holds a whole HTTP/1.1 response: its head, then as many body
/// bytes as `Content-Length` says, or a chunked body up to its last chunk.
fn response_complete(response: &[u8]) -> bool {
    let Some(split) = response.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    for line in head.lines() {
        if let Some(length) = line.strip_prefix("content-length:") {
            return length
                .trim()
                .parse::<usize>()
                .is_ok_and(|length| body.len() >= length);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n") && dechunk(body).is_ok();
        }
    }
    false // no length: the body ends when the connection does
}

/// The status and the JSON body of a whole HTTP/1.1 response.
fn parse_response(response: &[u8]) -> Result<(u16, Value), String> {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| "an incomplete HTTP response".to_owned())?;
    let head = String::from_utf8_lossy(&response[..split]);
    let mut body = response[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {:?}", head.lines().next()))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    let value = serde_json::from_slice(&body).map_err(|error| {
        format!(
            "the answer is not JSON ({error}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    Ok((status, value))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut plain = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or_else(|| "a chunk without its size line".to_owned())?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("a bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(plain);
        }
        let chunk = body
            .get(..size)
            .ok_or_else(|| "a chunk cut short".to_owned())?;
        plain.extend_from_slice(chunk);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_line() {
        assert_eq!(
            parse_port_line("ChromeDriver was started successfully on port 41235."),
            Some(41235)
        );
        assert_eq!(parse_port_line("Only local connections are allowed."), None);
        assert_eq!(
            parse_port_line("ChromeDriver was started successfully on port 0."),
            None
        );
    }

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"value\":null}";
        assert_eq!(
            parse_response(plain).unwrap(),
            (200, json!({ "value": null }))
        );
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
                        5\r\n{\"val\r\n9\r\nue\":true}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (404, json!({ "value": true }))
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(response_complete(plain));
        assert!(!response_complete(&plain[..plain.len() - 1]));
        assert!(response_complete(chunked));
        assert!(!response_complete(&chunked[..chunked.len() - 2]));
    }

    #[test]
    fn truthiness_is_javascripts() {
        for falsy in [json!(null), json!(false), json!(0), json!(""), json!(0.0)] {
            assert!(!is_truthy(&falsy), "{falsy}");
        }
        for truthy in [json!(true), json!(1), json!("x"), json!([]), json!({})] {
            assert!(is_truthy(&truthy), "{truthy}");
        }
    }
}
