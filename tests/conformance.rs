//! The conformance suite: every scenario of `wsse-testkit` against each server, one
//! test per server and scenario, named `server::scenario`.
//!
//! `cargo test -p wsse --test conformance -- heartbeat_drop` runs one scenario on
//! every server, `-- axum::` every scenario on one server, `-- --exact
//! axum::heartbeat_drop` just that one, and `-- --list` names them all without
//! starting anything. `WSSE_SERVERS=axum,scratch` and
//! `WSSE_SCENARIOS=heartbeat_drop,echo_route` narrow the set further (libtest takes
//! only one name filter). The table of results follows the tests' own report.
//!
//! `cargo test` builds the examples before it runs this test; after changing a server
//! and running only this test, rebuild the server first: `cargo build --examples`.
//! `WSSE_EXAMPLES_DIR` points at another folder of binaries.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use wsse_testkit::{Matrix, Scenario};

/// One test per (server, scenario), but the servers are not started per test: the
/// first test to run runs the matrix once for every chosen test, and each test
/// reports its own cell of it. The matrix keeps its process sharing (scenarios with
/// the same flags share a server, as in [`wsse_testkit::run_matrix_with`]) and runs
/// the servers one after the other whatever `--test-threads` says (the heartbeat and
/// shutdown scenarios measure time, and two servers under test on two cores would
/// slow each other down).
fn main() -> ExitCode {
    let arguments = Arguments::from_args();
    let servers = chosen_servers();
    let scenarios = chosen_scenarios();
    if scenarios.is_empty() {
        eprintln!("no scenario is named in WSSE_SCENARIOS");
        return ExitCode::FAILURE;
    }

    let names = |server: &str, scenario: &Scenario| format!("{server}::{}", scenario.name);
    // Which tests survive the filters, decided with libtest's own rule before any
    // server starts: a placeholder trial per name is enough to ask.
    let mut chosen: Vec<(String, Vec<Scenario>)> = Vec::new();
    for server in &servers {
        let runs: Vec<Scenario> = scenarios
            .iter()
            .filter(|scenario| {
                let probe = Trial::test(names(server, scenario), || Ok(()));
                !arguments.is_filtered_out(&probe) && !arguments.is_ignored(&probe)
            })
            .copied()
            .collect();
        if !runs.is_empty() {
            chosen.push((server.clone(), runs));
        }
    }

    let matrix: Arc<OnceLock<Matrix>> = Arc::new(OnceLock::new());
    let run_chosen = Arc::new(chosen);
    let mut trials = Vec::new();
    for server in &servers {
        for scenario in &scenarios {
            let (matrix, run_chosen) = (Arc::clone(&matrix), Arc::clone(&run_chosen));
            let (server_name, scenario_name) = (server.clone(), scenario.name);
            trials.push(Trial::ignorable_test(names(server, scenario), move || {
                let matrix = matrix.get_or_init(|| run_matrix(&run_chosen));
                report(matrix, &server_name, scenario_name)
            }));
        }
    }

    let conclusion = libtest_mimic::run(&arguments, trials);
    if let Some(matrix) = matrix.get() {
        println!();
        matrix.print();
    }
    conclusion.exit_code()
}

/// All servers, or those named in `WSSE_SERVERS`.
fn chosen_servers() -> Vec<String> {
    let chosen = std::env::var("WSSE_SERVERS").unwrap_or_default();
    if chosen.trim().is_empty() {
        wsse_testkit::SERVERS.map(str::to_owned).to_vec()
    } else {
        chosen
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// All scenarios, or those named in `WSSE_SCENARIOS`.
fn chosen_scenarios() -> Vec<Scenario> {
    let chosen = std::env::var("WSSE_SCENARIOS").unwrap_or_default();
    let chosen: Vec<&str> = chosen
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    wsse_testkit::scenarios::all()
        .into_iter()
        .filter(|scenario| chosen.is_empty() || chosen.contains(&scenario.name))
        .collect()
}

/// Runs each server's chosen scenarios, one server after the other, and joins the
/// results into one table.
fn run_matrix(chosen: &[(String, Vec<Scenario>)]) -> Matrix {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let mut order: HashMap<&str, usize> = HashMap::new();
    for (position, scenario) in wsse_testkit::scenarios::all().iter().enumerate() {
        order.insert(scenario.name, position);
    }
    let mut joined = Matrix::default();
    for (server, scenarios) in chosen {
        warn_if_stale(server);
        let one = runtime.block_on(wsse_testkit::run_matrix_with(&[server.as_str()], scenarios));
        joined.servers.extend(one.servers);
        for scenario in one.scenarios {
            if !joined.scenarios.contains(&scenario) {
                joined.scenarios.push(scenario);
            }
        }
        joined.cells.extend(one.cells);
        joined.durations.extend(one.durations);
        joined.skipped.extend(one.skipped);
    }
    joined
        .scenarios
        .sort_by_key(|name| order.get(name).copied());
    joined
}

/// One test's outcome from its cell: the scenario's failure message, or ignored
/// with the reason when the matrix skipped it (a failure when `CI` is set, as in
/// `tests/browser.rs`: there every scenario must run).
fn report(matrix: &Matrix, server: &str, scenario: &str) -> Result<Completion, Failed> {
    if let Some(cell) = matrix.cell(server, scenario) {
        return match &cell.outcome {
            Ok(()) => Ok(Completion::Completed),
            Err(reason) => Err(Failed::from(reason.as_str())),
        };
    }
    let skipped = matrix
        .skipped
        .iter()
        .find(|skip| skip.server == server && skip.scenario == scenario);
    match skipped {
        Some(skip) if std::env::var_os("CI").is_some() => Err(Failed::from(format!(
            "skipped, which CI does not allow: {}",
            skip.reason
        ))),
        Some(skip) => Ok(Completion::ignored_with(&skip.reason)),
        None => Err(Failed::from("the matrix did not run this scenario")),
    }
}

/// `cargo test --test conformance` does not rebuild the examples: say so when the
/// binary is older than its source, rather than silently test yesterday's server.
fn warn_if_stale(server: &str) {
    let Ok(binary) = wsse_testkit::example_binary(server) else {
        return; // The matrix reports the missing binary with the command to build it.
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{server}.rs"));
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified());
    if let (Ok(built), Ok(edited)) = (modified(&binary), modified(&source))
        && edited > built
    {
        eprintln!(
            "warning: {} is older than {}: run `cargo build --example {server}` first \
             (a plain `cargo test` builds the examples itself)",
            binary.display(),
            source.display()
        );
    }
}
