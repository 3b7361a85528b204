//! Running every scenario against every server, and the table of results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::{Instant, timeout};

use crate::process::ServerProcess;
use crate::scenarios::{self, DEFAULT_ARGS, Isolation, Scenario};
use crate::target::Target;

/// How long one scenario may run before it counts as failed.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a shared server may take to exit after SIGTERM at the end of a run.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The result of one scenario on one server.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The server (example name).
    pub server: String,
    /// The scenario name.
    pub scenario: &'static str,
    /// `Err` with the reason when it failed.
    pub outcome: Result<(), String>,
    /// How long it ran.
    pub duration: Duration,
}

/// A scenario that did not run on a server, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The server.
    pub server: String,
    /// The scenario name.
    pub scenario: &'static str,
    /// Why it did not run.
    pub reason: String,
}

/// Every scenario × every server.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    /// The servers, in the order given.
    pub servers: Vec<String>,
    /// The scenarios, in the order of [`scenarios::all`].
    pub scenarios: Vec<&'static str>,
    /// One cell per (server, scenario).
    pub cells: Vec<Cell>,
    /// How long each server's run took.
    pub durations: Vec<(String, Duration)>,
    /// The scenarios that did not run (see [`run_matrix_at`]); neither passed nor failed.
    pub skipped: Vec<Skipped>,
}

impl Matrix {
    /// The cell for this server and scenario.
    pub fn cell(&self, server: &str, scenario: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|cell| cell.server == server && cell.scenario == scenario)
    }

    /// How many cells passed.
    pub fn passed(&self) -> usize {
        self.cells
            .iter()
            .filter(|cell| cell.outcome.is_ok())
            .count()
    }

    /// How many cells failed.
    pub fn failed(&self) -> usize {
        self.cells.len() - self.passed()
    }

    /// Whether every cell passed.
    pub fn all_passed(&self) -> bool {
        self.failed() == 0
    }

    /// The failed cells.
    pub fn failures(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|cell| cell.outcome.is_err())
    }

    /// The table as text: a row per scenario, a column per server, the failure
    /// messages below, and the closing line `conformance: N passed, N failed`.
    pub fn render(&self) -> String {
        let name_width = self
            .scenarios
            .iter()
            .map(|name| name.len())
            .max()
            .unwrap_or(8)
            .max("scenario".len());
        let column_widths: Vec<usize> = self
            .servers
            .iter()
            .map(|server| server.len().max(4))
            .collect();
        let mut out = format!("{:name_width$}", "scenario");
        for (server, width) in self.servers.iter().zip(&column_widths) {
            out.push_str(&format!("  {server:width$}"));
        }
        out.push('\n');
        for scenario in &self.scenarios {
            out.push_str(&format!("{scenario:name_width$}"));
            for (server, width) in self.servers.iter().zip(&column_widths) {
                let skipped = self
                    .skipped
                    .iter()
                    .any(|skip| &skip.server == server && skip.scenario == *scenario);
                let mark = match self.cell(server, scenario) {
                    Some(cell) if cell.outcome.is_ok() => "pass",
                    Some(_) => "FAIL",
                    None if skipped => "skip",
                    None => "-",
                };
                out.push_str(&format!("  {mark:width$}"));
            }
            out.push('\n');
        }
        if !self.all_passed() {
            out.push_str("\nfailures:\n");
            for cell in self.failures() {
                let reason = cell.outcome.as_ref().err().map_or("", String::as_str);
                out.push_str(&format!(
                    "- {} / {} ({} ms):\n    {}\n",
                    cell.server,
                    cell.scenario,
                    cell.duration.as_millis(),
                    reason.replace('\n', "\n    ")
                ));
            }
        }
        if !self.skipped.is_empty() {
            out.push_str("\nskipped:\n");
            for skip in &self.skipped {
                out.push_str(&format!(
                    "- {} / {}: {}\n",
                    skip.server, skip.scenario, skip.reason
                ));
            }
        }
        out.push('\n');
        for (server, duration) in &self.durations {
            let mut cells: Vec<&Cell> = self
                .cells
                .iter()
                .filter(|cell| &cell.server == server)
                .collect();
            cells.sort_by_key(|cell| std::cmp::Reverse(cell.duration));
            let slowest: Vec<String> = cells
                .iter()
                .take(3)
                .map(|cell| format!("{} {:.1} s", cell.scenario, cell.duration.as_secs_f64()))
                .collect();
            out.push_str(&format!(
                "{server}: {:.1} s (slowest: {})\n",
                duration.as_secs_f64(),
                slowest.join(", ")
            ));
        }
        out.push_str(&format!(
            "conformance: {} passed, {} failed",
            self.passed(),
            self.failed()
        ));
        if !self.skipped.is_empty() {
            out.push_str(&format!(", {} skipped", self.skipped.len()));
        }
        out.push('\n');
        out
    }

    /// Prints [`Matrix::render`] to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Runs every scenario ([`scenarios::all`]) against each server, one server after
/// the other. Must run inside a multi-threaded Tokio runtime.
pub async fn run_matrix(servers: &[&str]) -> Matrix {
    run_matrix_with(servers, &scenarios::all()).await
}

/// Runs the given scenarios against each server.
pub async fn run_matrix_with(servers: &[&str], scenarios: &[Scenario]) -> Matrix {
    let launchers: Vec<Launcher> = servers
        .iter()
        .map(|server| Launcher::Example((*server).to_owned()))
        .collect();
    run_launchers(&launchers, scenarios).await
}

/// Runs the given scenarios against a program that is not one of the book's
/// examples (a learner's own server, say), started as the examples are: with
/// `args`, then `--addr 127.0.0.1:0` and the scenario's flags. `name` heads its
/// column.
pub async fn run_matrix_command(
    name: &str,
    program: PathBuf,
    args: Vec<String>,
    scenarios: &[Scenario],
) -> Matrix {
    let launcher = Launcher::Command {
        name: name.to_owned(),
        program,
        args,
    };
    run_launchers(&[launcher], scenarios).await
}

/// Runs the given scenarios against a server that is already running at `addr`
/// (started by someone else, with [`DEFAULT_ARGS`]). Only the scenarios that
/// need nothing else can run: one needing other flags, or a process of its own
/// to stop, is reported in [`Matrix::skipped`] with the reason.
pub async fn run_matrix_at(name: &str, addr: SocketAddr, scenarios: &[Scenario]) -> Matrix {
    let started = Instant::now();
    let mut matrix = Matrix {
        servers: vec![name.to_owned()],
        scenarios: scenarios.iter().map(|scenario| scenario.name).collect(),
        ..Matrix::default()
    };
    let mut runnable = Vec::new();
    for scenario in scenarios {
        let reason = if scenario.isolation == Isolation::OwnProcess {
            Some(format!(
                "it stops the server, so it needs a process of its own (flags {})",
                scenario.server_args.join(" ")
            ))
        } else if scenario.server_args != DEFAULT_ARGS {
            Some(format!(
                "it needs the server started with {}",
                scenario.server_args.join(" ")
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => matrix.skipped.push(Skipped {
                server: name.to_owned(),
                scenario: scenario.name,
                reason,
            }),
            None => runnable.push(*scenario),
        }
    }
    let target = Target::shared(name, addr);
    let mut cells = run_scenarios(name, &target, &runnable).await;
    sort_cells(&mut cells, scenarios);
    matrix.cells = cells;
    matrix.durations.push((name.to_owned(), started.elapsed()));
    matrix
}

/// How the servers of a matrix are started.
#[derive(Debug, Clone)]
enum Launcher {
    /// An example of the root package ([`ServerProcess::spawn`]).
    Example(String),
    /// A program with arguments ([`ServerProcess::spawn_command`]).
    Command {
        name: String,
        program: PathBuf,
        args: Vec<String>,
    },
}

impl Launcher {
    fn name(&self) -> &str {
        match self {
            Launcher::Example(name) | Launcher::Command { name, .. } => name,
        }
    }

    fn spawn(&self, extra_args: &[&str]) -> Result<ServerProcess, String> {
        match self {
            Launcher::Example(name) => ServerProcess::spawn(name, extra_args),
            Launcher::Command {
                name,
                program,
                args,
            } => {
                let mut command = Command::new(program);
                command.args(args);
                ServerProcess::spawn_command(name, command, extra_args)
            }
        }
    }
}

async fn run_launchers(launchers: &[Launcher], scenarios: &[Scenario]) -> Matrix {
    let mut matrix = Matrix {
        servers: launchers
            .iter()
            .map(|launcher| launcher.name().to_owned())
            .collect(),
        scenarios: scenarios.iter().map(|scenario| scenario.name).collect(),
        ..Matrix::default()
    };
    for launcher in launchers {
        let started = Instant::now();
        let mut cells = run_server(launcher, scenarios).await;
        sort_cells(&mut cells, scenarios);
        matrix.cells.extend(cells);
        matrix
            .durations
            .push((launcher.name().to_owned(), started.elapsed()));
    }
    matrix
}

/// Keep the table's order whatever order the groups ran in.
fn sort_cells(cells: &mut [Cell], scenarios: &[Scenario]) {
    cells.sort_by_key(|cell| {
        scenarios
            .iter()
            .position(|scenario| scenario.name == cell.scenario)
    });
}

/// Runs the scenarios against one server: one process per set of flags for the
/// shared and exclusive scenarios, one per scenario for the others.
async fn run_server(launcher: &Launcher, scenarios: &[Scenario]) -> Vec<Cell> {
    let mut groups: BTreeMap<&[&str], Vec<Scenario>> = BTreeMap::new();
    let mut own_process = Vec::new();
    for scenario in scenarios {
        if scenario.isolation == Isolation::OwnProcess {
            own_process.push(*scenario);
        } else {
            groups
                .entry(scenario.server_args)
                .or_default()
                .push(*scenario);
        }
    }
    let mut cells = Vec::new();
    for (args, group) in groups {
        cells.extend(run_group(launcher, args, &group).await);
    }
    for scenario in own_process {
        cells.extend(run_group(launcher, scenario.server_args, &[scenario]).await);
    }
    cells
}

/// Starts a server with `args`, runs the group's scenarios ([`run_scenarios`]),
/// then stops the server.
async fn run_group(
    launcher: &Launcher,
    args: &'static [&'static str],
    group: &[Scenario],
) -> Vec<Cell> {
    let server = launcher.name();
    let to_spawn = launcher.clone();
    let spawned = tokio::task::spawn_blocking(move || to_spawn.spawn(args)).await;
    let process = match spawned {
        Ok(Ok(process)) => Arc::new(Mutex::new(process)),
        Ok(Err(error)) => return failed_group(server, group, &error),
        Err(error) => return failed_group(server, group, &format!("spawning panicked: {error}")),
    };
    let owns = group
        .iter()
        .any(|scenario| scenario.isolation == Isolation::OwnProcess);
    let target = if owns {
        Target::owning(server, Arc::clone(&process))
    } else {
        let addr = lock(&process).addr();
        Target::shared(server, addr)
    };

    let mut cells = run_scenarios(server, &target, group).await;

    // A server that died during the run explains every failure after it.
    let exited_early = lock(&process).try_wait().ok().flatten();
    if let (Some(status), false) = (exited_early, owns) {
        let tail = lock(&process).stderr_tail();
        for cell in &mut cells {
            if let Err(reason) = &mut cell.outcome {
                reason.push_str(&format!(
                    "\n(the server exited during the run: {status}; its stderr ends with:\n{tail})"
                ));
            }
        }
    }
    if !owns {
        stop(process).await;
    }
    cells
}

/// Runs the shared scenarios of `group` concurrently, then the exclusive ones
/// one by one.
async fn run_scenarios(server: &str, target: &Target, group: &[Scenario]) -> Vec<Cell> {
    let shared = group
        .iter()
        .filter(|scenario| scenario.isolation != Isolation::Exclusive)
        .map(|scenario| run_one(server, *scenario, target.clone()));
    let mut cells = join_all(shared).await;
    for scenario in group
        .iter()
        .filter(|scenario| scenario.isolation == Isolation::Exclusive)
    {
        cells.push(run_one(server, *scenario, target.clone()).await);
    }
    cells
}

/// Runs one scenario in a task of its own (so a panic fails only it), bounded by
/// [`SCENARIO_TIMEOUT`].
async fn run_one(server: &str, scenario: Scenario, target: Target) -> Cell {
    let started = Instant::now();
    let mut task = tokio::spawn((scenario.run)(target));
    let outcome = match timeout(SCENARIO_TIMEOUT, &mut task).await {
        Err(_) => {
            // Dropping the task closes its connections and releases the process.
            task.abort();
            Err(format!(
                "did not finish within {} s",
                SCENARIO_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(error)) => Err(format!("panicked: {error}")),
        Ok(Ok(outcome)) => outcome,
    };
    Cell {
        server: server.to_owned(),
        scenario: scenario.name,
        outcome,
        duration: started.elapsed(),
    }
}

fn failed_group(server: &str, group: &[Scenario], error: &str) -> Vec<Cell> {
    group
        .iter()
        .map(|scenario| Cell {
            server: server.to_owned(),
            scenario: scenario.name,
            outcome: Err(format!("the server did not start: {error}")),
            duration: Duration::ZERO,
        })
        .collect()
}

/// SIGTERM, up to [`STOP_TIMEOUT`] to exit, then SIGKILL.
async fn stop(process: Arc<Mutex<ServerProcess>>) {
    let _ = tokio::task::spawn_blocking(move || {
        let mut process = lock(&process);
        if process.terminate().is_ok() && process.wait_with_timeout(STOP_TIMEOUT).is_none() {
            eprintln!(
                "server {} did not exit within {} s of SIGTERM; killing it",
                process.name(),
                STOP_TIMEOUT.as_secs()
            );
        }
        process.kill();
    })
    .await;
}

fn lock(process: &Mutex<ServerProcess>) -> std::sync::MutexGuard<'_, ServerProcess> {
    process.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(server: &str, scenario: &'static str, outcome: Result<(), String>) -> Cell {
        Cell {
            server: server.to_owned(),
            scenario,
            outcome,
            duration: Duration::from_millis(3),
        }
    }

    #[test]
    fn the_table_ends_with_the_counts() {
        let matrix = Matrix {
            servers: vec!["axum".into(), "scratch".into()],
            scenarios: vec!["one", "second_one"],
            cells: vec![
                cell("axum", "one", Ok(())),
                cell("axum", "second_one", Err("expected 1001,\ngot 1000".into())),
                cell("scratch", "one", Ok(())),
                cell("scratch", "second_one", Ok(())),
            ],
            durations: vec![("axum".into(), Duration::from_millis(1500))],
            skipped: Vec::new(),
        };
        assert_eq!((matrix.passed(), matrix.failed()), (3, 1));
        let text = matrix.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "scenario    axum  scratch");
        assert_eq!(lines[1], "one         pass  pass   ");
        assert_eq!(lines[2], "second_one  FAIL  pass   ");
        assert!(text.contains("- axum / second_one (3 ms):\n    expected 1001,\n    got 1000\n"));
        assert!(text.contains("axum: 1.5 s (slowest: one 0.0 s, second_one 0.0 s)\n"));
        assert_eq!(lines.last(), Some(&"conformance: 3 passed, 1 failed"));
    }

    #[tokio::test]
    async fn a_missing_server_fails_every_scenario_with_the_reason() {
        let matrix = run_matrix(&["no-such-server-wsse"]).await;
        assert_eq!(matrix.passed(), 0);
        assert_eq!(matrix.failed(), scenarios::all().len());
        let reason = matrix.cells[0].outcome.as_ref().unwrap_err();
        assert!(
            reason.contains("cargo build --example no-such-server-wsse"),
            "{reason}"
        );
    }

    #[test]
    fn skipped_scenarios_are_marked_listed_and_counted() {
        let matrix = Matrix {
            servers: vec!["mine".into()],
            scenarios: vec!["one", "two"],
            cells: vec![cell("mine", "one", Ok(()))],
            durations: Vec::new(),
            skipped: vec![Skipped {
                server: "mine".into(),
                scenario: "two",
                reason: "it needs the server started with --heartbeat 1".into(),
            }],
        };
        let text = matrix.render();
        assert!(text.contains("\ntwo       skip\n"), "{text}");
        assert!(
            text.contains("- mine / two: it needs the server started with --heartbeat 1\n"),
            "{text}"
        );
        assert!(matrix.all_passed());
        assert!(
            text.ends_with("conformance: 1 passed, 0 failed, 1 skipped\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn by_address_only_the_default_scenarios_run() {
        // Nothing listens on this port once the listener is gone.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let chosen: Vec<Scenario> = scenarios::all()
            .into_iter()
            .filter(|scenario| {
                ["page_and_healthz", "heartbeat_drop", "clean_shutdown"].contains(&scenario.name)
            })
            .collect();
        let matrix = run_matrix_at("mine", addr, &chosen).await;
        let ran: Vec<&str> = matrix.cells.iter().map(|cell| cell.scenario).collect();
        assert_eq!(ran, ["page_and_healthz"]);
        assert!(matrix.cells[0].outcome.is_err(), "nothing listens there");
        let skipped: Vec<&str> = matrix.skipped.iter().map(|skip| skip.scenario).collect();
        assert_eq!(skipped, ["heartbeat_drop", "clean_shutdown"]);
        assert!(matrix.skipped[0].reason.contains("--heartbeat 1"));
        assert!(matrix.skipped[1].reason.contains("process of its own"));
    }
}
