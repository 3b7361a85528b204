//! The article's own stacks as peers of our servers: its FastAPI app on uvicorn and
//! its Node.js server on `ws`, kept in `crates/loadgen/peers/` and installed here on
//! first use, under `target/peers/`: a Python virtual environment from the pinned
//! `requirements.txt`, and `npm ci` from the Node peer's lock file. Each install is
//! redone only when its requirements or lock file changed.
//!
//! A peer speaks the routes the load generator and the smoke check use (`/ws`,
//! `/events`, `/echo`, `/stream`), takes `--addr`, prints the listening line that
//! [`crate::ServerProcess`] waits for, and stops on SIGTERM, like our servers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use crate::process::target_dir;

/// Held while something is installed under `target/peers/`.
static INSTALLING: Mutex<()> = Mutex::new(());

/// One of the article's stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// FastAPI on uvicorn (one worker), Python.
    FastApi,
    /// `ws` and `http`, Node.js.
    Node,
}

/// Both peers, in the order the tables show them.
pub const PEERS: [Peer; 2] = [Peer::FastApi, Peer::Node];

/// How to start an installed peer: `program arguments...`, to which the caller adds
/// `--addr` and the rest (or wraps it in `taskset`).
#[derive(Debug, Clone)]
pub struct PeerCommand {
    /// The interpreter.
    pub program: PathBuf,
    /// The peer's script and anything before the caller's own arguments.
    pub arguments: Vec<PathBuf>,
}

impl PeerCommand {
    /// The command, ready for [`crate::ServerProcess::spawn_command`].
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.arguments);
        command
    }
}

impl Peer {
    /// Its name in the tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Peer::FastApi => "fastapi",
            Peer::Node => "node",
        }
    }

    /// Whether its interpreter is here, as [`crate::programs_present`] takes it: why
    /// the peer cannot be installed (`None` when it can), and the command that
    /// installs what is missing.
    pub fn prerequisite(self) -> (Option<String>, &'static str) {
        let (program, arguments, install): (_, &[&str], _) = match self {
            Peer::FastApi => (
                "python3",
                &["-c", "import venv, ensurepip"],
                "apt-get install -y python3 python3-venv",
            ),
            Peer::Node => ("npm", &["--version"], "apt-get install -y nodejs npm"),
        };
        let what = format!("`{program}` that can make a {}", self.kind());
        (crate::unless_it_runs(&what, program, arguments), install)
    }

    fn kind(self) -> &'static str {
        match self {
            Peer::FastApi => "virtual environment",
            Peer::Node => "node_modules folder",
        }
    }

    /// Installs the peer under `target/peers/NAME` unless it is already installed
    /// from the same pinned versions, and says how to start it.
    ///
    /// # Errors
    ///
    /// When the interpreter is missing or the install fails, with its output.
    pub fn install(self) -> Result<PeerCommand, String> {
        let source = peers_source_dir();
        match self {
            Peer::FastApi => Ok(PeerCommand {
                program: python_environment(self.name(), &source.join("python/requirements.txt"))?,
                arguments: vec![source.join("python/app.py")],
            }),
            Peer::Node => {
                let _installing = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
                let target = target_dir().join("peers").join(self.name());
                std::fs::create_dir_all(&target)
                    .map_err(|error| format!("cannot create {}: {error}", target.display()))?;
                // npm installs next to package.json, and Node finds modules next to
                // the script: so both are copied into the target folder.
                for file in ["package.json", "package-lock.json", "server.js"] {
                    copy_if_changed(&source.join("node").join(file), &target.join(file))?;
                }
                install_once(
                    &source.join("node/package-lock.json"),
                    &target.join("installed.txt"),
                    || {
                        run(Command::new("npm")
                            .args(["ci", "--no-audit", "--no-fund", "--silent"])
                            .current_dir(&target))
                    },
                )?;
                Ok(PeerCommand {
                    program: PathBuf::from("node"),
                    arguments: vec![target.join("server.js")],
                })
            }
        }
    }
}

/// The Python of a virtual environment `target/peers/NAME/venv` with
/// `requirements` installed, made (or remade) when they changed.
///
/// # Errors
///
/// When `python3` cannot make it or pip cannot install the requirements.
pub fn python_environment(name: &str, requirements: &Path) -> Result<PathBuf, String> {
    // Tests of one binary run side by side: one install at a time.
    let _installing = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    let target = target_dir().join("peers").join(name);
    std::fs::create_dir_all(&target)
        .map_err(|error| format!("cannot create {}: {error}", target.display()))?;
    let venv = target.join("venv");
    let python = venv.join("bin/python");
    install_once(requirements, &target.join("installed.txt"), || {
        run(Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg("--clear")
            .arg(&venv))?;
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements))
    })?;
    Ok(python)
}

/// The Python that runs the article's clients (`article_clients/`: `websockets`
/// and `aiohttp`), installed on first use like the peers.
///
/// # Errors
///
/// As for [`python_environment`].
pub fn article_clients_python() -> Result<PathBuf, String> {
    python_environment(
        "article-clients",
        &peers_source_dir().join("article_clients/requirements.txt"),
    )
}

/// `crates/loadgen/peers/`.
pub fn peers_source_dir() -> PathBuf {
    workspace_root().join("crates/loadgen/peers")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `install` unless `marker` holds the same bytes as `pinned` (the
/// requirements or lock file the last install used); then records them.
fn install_once(
    pinned: &Path,
    marker: &Path,
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let wanted = std::fs::read(pinned)
        .map_err(|error| format!("cannot read {}: {error}", pinned.display()))?;
    if std::fs::read(marker).is_ok_and(|installed| installed == wanted) {
        return Ok(());
    }
    // A failed install must not leave a marker that says it succeeded.
    let _ = std::fs::remove_file(marker);
    install()?;
    std::fs::write(marker, wanted)
        .map_err(|error| format!("cannot write {}: {error}", marker.display()))
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let bytes =
        std::fs::read(from).map_err(|error| format!("cannot read {}: {error}", from.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(to, bytes).map_err(|error| format!("cannot write {}: {error}", to.display()))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|error| format!("cannot run {shown}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_runs_once_per_pinned_file() {
        let directory = std::env::temp_dir().join(format!("wsse-peers-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let (pinned, marker) = (directory.join("lock"), directory.join("installed"));
        std::fs::write(&pinned, "a==1").unwrap();
        let mut runs = 0;
        install_once(&pinned, &marker, || {
            runs += 1;
            Ok(())
        })
        .unwrap();
        install_once(&pinned, &marker, || {
            runs += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 1);
        std::fs::write(&pinned, "a==2").unwrap();
        let failed = install_once(&pinned, &marker, || Err("no network".to_owned()));
        assert!(failed.is_err());
        assert!(!marker.exists(), "a failed install leaves no marker");
        install_once(&pinned, &marker, || {
            runs += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 2);
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
