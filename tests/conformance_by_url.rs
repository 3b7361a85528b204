//! `cargo xtask conformance` for a learner's server, tested on the scratch
//! server: by address (a server someone else started), the scenarios that need
//! only the default flags run and pass, the others are reported as skipped; by
//! command, the suite starts the program itself, so the others run too.

use wsse_testkit::scenarios::{self, DEFAULT_ARGS, Isolation};
use wsse_testkit::{ServerProcess, example_binary};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

#[test]
fn by_url_the_default_scenarios_pass_and_the_others_are_skipped() {
    let server = ServerProcess::spawn("scratch", DEFAULT_ARGS).expect("the scratch server starts");
    let all = scenarios::all();
    let matrix = runtime().block_on(wsse_testkit::run_matrix_at(
        "scratch-by-url",
        server.addr(),
        &all,
    ));
    matrix.print();

    let runnable: Vec<&str> = all
        .iter()
        .filter(|scenario| {
            scenario.server_args == DEFAULT_ARGS && scenario.isolation != Isolation::OwnProcess
        })
        .map(|scenario| scenario.name)
        .collect();
    let ran: Vec<&str> = matrix.cells.iter().map(|cell| cell.scenario).collect();
    assert_eq!(ran, runnable);
    assert!(matrix.all_passed(), "{} failed", matrix.failed());
    let skipped: Vec<&str> = matrix.skipped.iter().map(|skip| skip.scenario).collect();
    assert_eq!(
        skipped,
        [
            "origin_allow_list",
            "heartbeat_drop",
            "stuck_readers_dropped",
            "fragment_flood",
            "connection_ceiling",
            "connections_per_address",
            "slow_request_heads_dropped",
            "message_rate_limited",
            "auth_refuses_strangers",
            "auth_sessions_and_tickets",
            "auth_sign_out_ends_connections",
            "sse_heartbeat_event",
            "clean_shutdown"
        ]
    );
    assert!(matrix.render().ends_with(&format!(
        "conformance: {} passed, 0 failed, 13 skipped\n",
        ran.len()
    )));
}

#[test]
fn by_command_the_flagged_and_own_process_scenarios_run_too() {
    let binary = example_binary("scratch").expect("the scratch example is built");
    let chosen: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|scenario| ["heartbeat_drop", "clean_shutdown"].contains(&scenario.name))
        .collect();
    let matrix = runtime().block_on(wsse_testkit::run_matrix_command(
        "scratch-by-command",
        binary,
        Vec::new(),
        &chosen,
    ));
    matrix.print();
    assert_eq!(matrix.cells.len(), 2);
    assert!(matrix.skipped.is_empty());
    assert!(matrix.all_passed(), "{} failed", matrix.failed());
}
