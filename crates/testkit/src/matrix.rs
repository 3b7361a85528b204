//! Running every scenario against every server, and the table of results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::{Instant, timeout};

use crate::process::ServerProcess;
use crate::scenarios::{self, Isolation, Scenario};
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
                let mark = match self.cell(server, scenario) {
                    Some(cell) if cell.outcome.is_ok() => "pass",
                    Some(_) => "FAIL",
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
            "conformance: {} passed, {} failed\n",
            self.passed(),
            self.failed()
        ));
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
    let mut matrix = Matrix {
        servers: servers.iter().map(|server| (*server).to_owned()).collect(),
        scenarios: scenarios.iter().map(|scenario| scenario.name).collect(),
        ..Matrix::default()
    };
    for server in servers {
        let started = Instant::now();
        let mut cells = run_server(server, scenarios).await;
        // Keep the table's order whatever order the groups ran in.
        cells.sort_by_key(|cell| {
            scenarios
                .iter()
                .position(|scenario| scenario.name == cell.scenario)
        });
        matrix.cells.extend(cells);
        matrix
            .durations
            .push(((*server).to_owned(), started.elapsed()));
    }
    matrix
}

/// Runs the scenarios against one server: one process per set of flags for the
/// shared and exclusive scenarios, one per scenario for the others.
async fn run_server(server: &str, scenarios: &[Scenario]) -> Vec<Cell> {
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
        cells.extend(run_group(server, args, &group).await);
    }
    for scenario in own_process {
        cells.extend(run_group(server, scenario.server_args, &[scenario]).await);
    }
    cells
}

/// Starts a server with `args`, runs the group's shared scenarios concurrently, then
/// the exclusive ones one by one, then stops the server.
async fn run_group(server: &str, args: &'static [&'static str], group: &[Scenario]) -> Vec<Cell> {
    let name = server.to_owned();
    let spawned = tokio::task::spawn_blocking(move || ServerProcess::spawn(&name, args)).await;
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
}
