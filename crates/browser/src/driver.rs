//! chromedriver and the browser sessions it opens, over WebDriver.
//!
//! WebDriver is not what this book teaches, so the protocol is left to a well-kept
//! client, `fantoccini`; this module starts chromedriver, sets up each browser, and
//! gives the tests a blocking API (each call runs on a small tokio runtime the
//! [`Driver`] owns), so a test reads top to bottom. Chromium adds one command of its
//! own that the tests need and `fantoccini` does not know: `POST /session/ID/se/log`
//! returns the console messages and the failed requests logged since the last call,
//! once the session asked for them with the `goog:loggingPrefs` capability; it goes
//! through `fantoccini`'s `issue_cmd` as [`BrowserLog`].
//!
//! Every browser runs headless with a fresh profile (`--user-data-dir` in a temporary
//! folder, removed afterwards), and with Chromium's own background traffic (updates,
//! sync, safe browsing lists, QUIC probes) turned off: the tests talk to 127.0.0.1
//! only.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use crate::Chrome;

/// How long chromedriver may take to say which port it listens on.
const DRIVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one WebDriver command may take (starting a browser is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a wait lasts unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How often a wait polls its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(40);

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
    /// Where `fantoccini`'s connections and session tasks run.
    runtime: Arc<Runtime>,
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start a tokio runtime: {error}"))?;
        let mut driver = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            chromium: chrome.chromium.clone(),
            runtime: Arc::new(runtime),
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
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": arguments,
            },
            // An alert the page opens is refused, not left to block every later
            // command (the tests replace window.alert to see calls).
            "unhandledPromptBehavior": "dismiss",
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("json!({{...}}) is an object")
        };
        let url = format!("http://{}", self.addr);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let connecting = builder.connect(&url);
        match run_blocking(
            &self.runtime,
            "chromedriver could not start Chromium",
            connecting,
        ) {
            Ok(client) => Ok(Session {
                client,
                runtime: Arc::clone(&self.runtime),
                profile,
            }),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&profile);
                Err(error)
            }
        }
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
    client: Client,
    runtime: Arc<Runtime>,
    profile: PathBuf,
}

/// Chromium's `se/log` command: the browser log since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

impl Session {
    /// Runs one `fantoccini` call of this session ([`run_blocking`]).
    fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> Result<T, String> {
        run_blocking(&self.runtime, what, call)
    }

    /// Opens `url` and waits until it has loaded (the `load` event).
    ///
    /// # Errors
    ///
    /// WebDriver's error.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.run(&format!("opening {url}"), self.client.goto(url))
    }

    /// Runs `script` as the body of a function in the page (`arguments[0]`... are
    /// `arguments`) and returns what it returned, as JSON.
    ///
    /// # Errors
    ///
    /// A script that throws, with the exception's message.
    pub fn execute(&self, script: &str, arguments: &[Value]) -> Result<Value, String> {
        self.run(
            "running a script",
            self.client.execute(script, arguments.to_vec()),
        )
    }

    /// The first element matching the CSS `selector`.
    fn find(&self, selector: &str) -> Result<fantoccini::elements::Element, String> {
        self.run(
            &format!("finding {selector}"),
            self.client.find(Locator::Css(selector)),
        )
    }

    /// Types `text` into the element matching `selector`, key by key, as a user would
    /// (after what it already holds).
    ///
    /// # Errors
    ///
    /// When nothing matches, or the element cannot take keys (disabled, hidden).
    pub fn type_text(&self, selector: &str, text: &str) -> Result<(), String> {
        let element = self.find(selector)?;
        self.run(&format!("typing into {selector}"), element.send_keys(text))
    }

    /// Empties the input matching `selector`.
    ///
    /// # Errors
    ///
    /// When nothing matches or the element is not editable.
    pub fn clear(&self, selector: &str) -> Result<(), String> {
        let element = self.find(selector)?;
        self.run(&format!("clearing {selector}"), element.clear())
    }

    /// Clicks the element matching `selector` (in its middle, as a mouse would).
    ///
    /// # Errors
    ///
    /// When nothing matches, or the element cannot be clicked (hidden, covered).
    pub fn click(&self, selector: &str) -> Result<(), String> {
        let element = self.find(selector)?;
        self.run(&format!("clicking {selector}"), element.click())
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
    /// WebDriver's error, or an answer that is not a list.
    pub fn browser_log(&self) -> Result<Vec<LogEntry>, String> {
        let entries = self.run("reading the browser log", self.client.issue_cmd(BrowserLog))?;
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
    /// WebDriver's error.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        self.run("taking a screenshot", self.client.screenshot())
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
        let client = self.client.clone();
        let _ = self.run("closing the browser", client.close());
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Runs `call` on `runtime` to its end, within [`COMMAND_TIMEOUT`]; `what` names it
/// in the error.
fn run_blocking<T, E: std::fmt::Display>(
    runtime: &Runtime,
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    // The timer is made inside the runtime, which it needs.
    let call = async { tokio::time::timeout(COMMAND_TIMEOUT, call).await };
    match runtime.block_on(call) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {}", first_line(&error.to_string()))),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            COMMAND_TIMEOUT.as_secs()
        )),
    }
}

/// The first line of an error: WebDriver's messages carry a stack trace after it.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
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
    fn truthiness_is_javascripts() {
        for falsy in [json!(null), json!(false), json!(0), json!(""), json!(0.0)] {
            assert!(!is_truthy(&falsy), "{falsy}");
        }
        for truthy in [json!(true), json!(1), json!("x"), json!([]), json!({})] {
            assert!(is_truthy(&truthy), "{truthy}");
        }
    }
}
