//! The web page and the book, tested in a real browser.
//!
//! Debian packages Chromium and its WebDriver server, chromedriver
//! (`apt-get install chromium chromium-driver`). This crate starts chromedriver on a
//! free port of 127.0.0.1, opens headless Chromium sessions through it, and speaks
//! WebDriver to them with `fantoccini` (WebDriver is not what this book teaches),
//! behind a blocking API so a test reads top to bottom.
//!
//! - [`Chrome::find`]: where Chromium and chromedriver are, or why they are not.
//! - [`driver`]: [`Driver`] (the chromedriver process, killed with every browser it
//!   started when dropped) and [`Session`] (one browser window: open a page, type,
//!   click, run a script, wait for a condition with a timeout, read the console log,
//!   take a screenshot).
//! - [`page`]: [`AppPage`], the app's web page (`crates/app/src/page.html`) driven by
//!   its element ids, with a recorder that keeps every state the page showed.
//! - [`files`]: [`StaticFiles`], a static file server for the built book that
//!   remembers every request and its status.
//!
//! ```no_run
//! use wsse_browser::{AppPage, Chrome, Driver};
//!
//! let chrome = Chrome::find().expect("Chromium is installed");
//! let driver = Driver::start(&chrome).unwrap();
//! let browser = driver.session().unwrap();
//! let page = AppPage::open(&browser, "http://127.0.0.1:3001").unwrap();
//! page.join("ada").unwrap();
//! page.send("hello").unwrap();
//! ```

pub mod driver;
pub mod files;
pub mod page;

use std::path::{Path, PathBuf};

pub use driver::{Driver, LogEntry, Session, SessionOptions};
pub use files::StaticFiles;
pub use page::{AppPage, ShownMessage};

/// The command that installs what the browser tests need, on Debian and Ubuntu.
pub const INSTALL_COMMAND: &str = "apt-get update && apt-get install -y chromium chromium-driver";

/// The environment variable that names the Chromium binary to use.
pub const CHROMIUM_VARIABLE: &str = "WSSE_CHROMIUM";

/// The environment variable that names the chromedriver binary to use.
pub const CHROMEDRIVER_VARIABLE: &str = "WSSE_CHROMEDRIVER";

/// The names Chromium goes by on `PATH`, in the order they are tried.
const CHROMIUM_NAMES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The two programs a browser test needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chrome {
    /// The browser.
    pub chromium: PathBuf,
    /// Its WebDriver server.
    pub chromedriver: PathBuf,
}

impl Chrome {
    /// Finds Chromium and chromedriver: `$WSSE_CHROMIUM` and `$WSSE_CHROMEDRIVER` if
    /// set, else the usual names on `PATH`.
    ///
    /// # Errors
    ///
    /// What is missing, in words (without the install command: see
    /// [`INSTALL_COMMAND`]).
    pub fn find() -> Result<Chrome, String> {
        let chromium = find_program(CHROMIUM_VARIABLE, CHROMIUM_NAMES);
        let chromedriver = find_program(CHROMEDRIVER_VARIABLE, &["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Ok(Chrome {
                chromium,
                chromedriver,
            }),
            (None, Some(_)) => Err(format!(
                "no Chromium found (looked for {} on PATH, and ${CHROMIUM_VARIABLE})",
                CHROMIUM_NAMES.join(", ")
            )),
            (Some(_), None) => Err(format!(
                "no chromedriver found (looked on PATH, and ${CHROMEDRIVER_VARIABLE})"
            )),
            (None, None) => Err("no Chromium and no chromedriver found".to_owned()),
        }
    }
}

/// The program named by `variable`, else the first of `names` found on `PATH`.
fn find_program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    let search_path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&search_path)
            .map(|directory| directory.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_on_path_is_found_and_a_missing_one_is_not() {
        // `sh` is on every PATH this crate runs on.
        assert!(
            find_program(
                "WSSE_BROWSER_TEST_UNSET_VARIABLE",
                &["no-such-program", "sh"]
            )
            .is_some()
        );
        assert!(
            find_program(
                "WSSE_BROWSER_TEST_UNSET_VARIABLE",
                &["no-such-program-wsse"]
            )
            .is_none()
        );
    }

    #[test]
    fn a_directory_is_not_a_program() {
        assert!(!is_executable(Path::new("/")));
    }
}
