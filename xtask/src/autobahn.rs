//! `cargo xtask autobahn`: Autobahn|Testsuite against every server and client.
//!
//! Autobahn|Testsuite is the conformance suite of the WebSocket world. It runs on
//! CPython 2.7 only, so this task finds a Python 2.7, installs the suite with pinned
//! dependencies into `target/autobahn/python` (once), and then:
//!
//! - runs `wstest -m fuzzingclient` against `/echo` of each server of a [`Suite`],
//!   each started on a free port as `ServerProcess` does for the test kit;
//! - runs `wstest -m fuzzingserver` and lets each client of the suite run its
//!   `--autobahn URL` loop against it;
//! - reads each `index.json`, prints the tables, and holds each testee to its [`Bar`].
//!
//! Two suites run: [`PROTOCOL`], cases 1 to 10 against every server and client, one
//! testee after the other, and [`COMPRESSION`], cases 12 and 13 (permessage-deflate)
//! against the two that negotiate it, side by side, since each takes minutes of
//! Python's time. Every spec, log and report lands under `target/autobahn/SUITE/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wsse_testkit::{ServerProcess, accepts_connections, free_addr};

use crate::process::{cargo, command_output, describe, machine, run_streamed, workspace_root};
use crate::test::{Outcome, StepResult, TestCounts};

/// The suite's version, on PyPI.
const SUITE: &str = "autobahntestsuite==25.10.1";

/// Everything the suite needs, pinned. Its source package has no requirements file,
/// so pip cannot resolve them for Python 2.7 by itself: the versions are the last
/// ones that work together there. The suite itself is installed after, `--no-deps`.
const REQUIREMENTS: &[&str] = &[
    "Twisted==19.10.0",
    "autobahn[twisted,accelerate]==0.10.9",
    "txaio==2.1.0",
    "zope.interface==4.6.0",
    "six==1.16.0",
    "cryptography==3.3.2",
    "pyOpenSSL==19.1.0",
    "service_identity==18.1.0",
    "jinja2==2.11.3",
    "markupsafe==1.1.1",
    "Werkzeug==1.0.1",
    "klein==17.10.0",
    "unittest2==1.1.0",
    "incremental==16.10.1",
    "setuptools==44.0.0",
    // What the packages above pull in, pinned too so that a new release of one of
    // them cannot change what gets installed.
    "Automat==22.10.0",
    "PyHamcrest==1.10.1",
    "attrs==21.4.0",
    "constantly==15.1.0",
    "hyperlink==21.0.0",
    "idna==2.10",
    "typing==3.10.0.0",
    "wsaccel==0.6.6",
    "ujson==2.0.3",
    "enum34==1.1.10",
    "pycparser==2.21",
    "cffi==1.15.1",
    "ipaddress==1.0.23",
    "pyasn1==0.5.1",
    "pyasn1-modules==0.3.0",
    "argparse==1.4.0",
    "linecache2==1.0.0",
    "traceback2==1.4.0",
];

/// How many cases [`PROTOCOL`] selects in this version of the suite (section 8 is empty).
pub(crate) const CASE_COUNT: usize = 301;

/// How many cases [`COMPRESSION`] selects in this version of the suite.
pub(crate) const COMPRESSION_CASE_COUNT: usize = 216;

/// The title of each section, as Autobahn's report names it.
const SECTION_TITLES: &[(u32, &str)] = &[
    (1, "Framing"),
    (2, "Pings/Pongs"),
    (3, "Reserved bits"),
    (4, "Opcodes"),
    (5, "Fragmentation"),
    (6, "UTF-8 handling"),
    (7, "Close handling"),
    (8, "Misc"),
    (9, "Limits/performance"),
    (10, "Auto-fragmentation"),
    (12, "Compression (payloads)"),
    (13, "Compression (parameters)"),
];

/// The page of the book the table is written to.
const BOOK_TABLE: &str = "book/src/generated/autobahn.md";

/// What a testee has to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// For code built on a library: no case FAILED, and every close OK or
    /// INFORMATIONAL. NON-STRICT and UNIMPLEMENTED are accepted.
    Library,
    /// For the code written here from scratch: every case OK or INFORMATIONAL,
    /// its close too.
    Strict,
}

impl Bar {
    fn describe(self) -> &'static str {
        match self {
            Bar::Library => "no FAILED case, every close OK or INFORMATIONAL",
            Bar::Strict => "every case and every close OK or INFORMATIONAL",
        }
    }
}

/// Which side of the connection the testee plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// One program under test: an example of the root package, the arguments it is
/// started with, and the bar it must reach.
#[derive(Debug, Clone, Copy)]
pub struct Testee {
    pub name: &'static str,
    pub arguments: &'static [&'static str],
    pub bar: Bar,
}

impl Testee {
    const fn new(name: &'static str, bar: Bar) -> Testee {
        Testee {
            name,
            arguments: &[],
            bar,
        }
    }

    /// What the tables call it: its name, with its arguments if it has any.
    fn label(&self) -> String {
        std::iter::once(self.name)
            .chain(self.arguments.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A set of cases, and the servers and clients that must pass them.
#[derive(Debug)]
pub struct Suite {
    /// Its folder under `target/autobahn/`.
    pub name: &'static str,
    /// The case groups, as the suite's spec takes them.
    pub cases: &'static [&'static str],
    /// How many cases `cases` selects: a run with fewer or more fails.
    pub case_count: usize,
    /// Each started on a free port; `wstest -m fuzzingclient` connects to its `/echo`.
    pub servers: &'static [Testee],
    /// Each runs as `NAME ARGUMENTS --autobahn ws://IP:PORT` against `wstest -m
    /// fuzzingserver`: it asks for the case count, runs every case
    /// (`/runCase?case=N&agent=AGENT`) and asks for the reports
    /// (`/updateReports?agent=AGENT`). A client whose binary is not built is
    /// skipped, not failed.
    pub clients: &'static [Testee],
    /// Whether its testees run at the same time. Sections 1 to 10 time how fast a
    /// peer closes, which a loaded machine would blur; 12 and 13 do not.
    pub side_by_side: bool,
    /// How long one testee may take before it is killed and failed: well above
    /// its time on the 2-core machine of the book's page (15 s and 7 minutes).
    pub timeout: Duration,
}

/// Every case without compression, against every server and client.
pub const PROTOCOL: Suite = Suite {
    name: "protocol",
    cases: &[
        "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*",
    ],
    case_count: CASE_COUNT,
    servers: &[
        Testee::new("axum", Bar::Library),
        Testee::new("actix", Bar::Library),
        Testee::new("warp", Bar::Library),
        Testee::new("scratch", Bar::Strict),
    ],
    clients: &[
        Testee::new("wire_client", Bar::Strict),
        Testee::new("chat_client", Bar::Library),
    ],
    side_by_side: false,
    timeout: Duration::from_secs(600),
};

/// The compression cases, against the server and the client that negotiate
/// permessage-deflate (the frameworks decline it: tests/permessage_deflate.rs).
pub const COMPRESSION: Suite = Suite {
    name: "compression",
    cases: &["12.*", "13.*"],
    case_count: COMPRESSION_CASE_COUNT,
    servers: &[Testee::new("scratch", Bar::Strict)],
    clients: &[Testee {
        name: "wire_client",
        arguments: &["--deflate"],
        bar: Bar::Strict,
    }],
    side_by_side: true,
    timeout: Duration::from_secs(1500),
};

/// The suites `cargo xtask autobahn` runs, in order.
pub const SUITES: &[&Suite] = &[&PROTOCOL, &COMPRESSION];

/// One case's verdicts, from `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case id, such as `6.4.3`.
    pub id: String,
    /// OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED or FAILED.
    pub behavior: String,
    /// How the connection closed: OK, INFORMATIONAL, or what went wrong (FAILED BY
    /// CLIENT, UNCLEAN, WRONG CODE, ...).
    pub behavior_close: String,
}

/// Reads Autobahn's `index.json`: for each agent, its cases sorted by id.
pub fn parse_index(json: &str) -> Result<BTreeMap<String, Vec<CaseResult>>, String> {
    let index: serde_json::Value =
        serde_json::from_str(json).map_err(|error| format!("index.json: {error}"))?;
    let agents = index
        .as_object()
        .ok_or("index.json: expected an object of agents")?;
    let mut parsed = BTreeMap::new();
    for (agent, cases) in agents {
        let cases = cases
            .as_object()
            .ok_or_else(|| format!("index.json: agent {agent}: expected an object of cases"))?;
        let mut results = Vec::with_capacity(cases.len());
        for (id, case) in cases {
            let field = |name: &str| {
                case[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("index.json: {agent} case {id}: no {name}"))
            };
            results.push(CaseResult {
                id: id.clone(),
                behavior: field("behavior")?,
                behavior_close: field("behaviorClose")?,
            });
        }
        results.sort_by_key(|case| case_key(&case.id));
        parsed.insert(agent.clone(), results);
    }
    Ok(parsed)
}

/// `6.10.1` as `[6, 10, 1]`, so that it sorts after `6.9.4`.
fn case_key(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|part| part.parse().unwrap_or(u32::MAX))
        .collect()
}

fn section(id: &str) -> u32 {
    case_key(id)[0]
}

/// Every way `cases` fall short of `bar`, one line each; empty means it passed.
pub fn shortfalls(cases: &[CaseResult], bar: Bar, expected_count: usize) -> Vec<String> {
    let mut problems = Vec::new();
    if cases.len() != expected_count {
        problems.push(format!(
            "ran {} cases, expected {expected_count}",
            cases.len()
        ));
    }
    for case in cases {
        let behavior_ok = match bar {
            Bar::Library => matches!(
                case.behavior.as_str(),
                "OK" | "NON-STRICT" | "INFORMATIONAL" | "UNIMPLEMENTED"
            ),
            Bar::Strict => matches!(case.behavior.as_str(), "OK" | "INFORMATIONAL"),
        };
        let close_ok = matches!(case.behavior_close.as_str(), "OK" | "INFORMATIONAL");
        if !behavior_ok || !close_ok {
            problems.push(format!(
                "case {}: {}, close {}",
                case.id, case.behavior, case.behavior_close
            ));
        }
    }
    problems
}

/// The counts of one testee in one section, or in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub non_strict: usize,
    pub informational: usize,
    pub unimplemented: usize,
    /// FAILED, and any verdict this table does not know.
    pub failed: usize,
    /// Cases whose close was neither OK nor INFORMATIONAL.
    pub close_failed: usize,
}

impl Counts {
    fn add(&mut self, case: &CaseResult) {
        match case.behavior.as_str() {
            "OK" => self.ok += 1,
            "NON-STRICT" => self.non_strict += 1,
            "INFORMATIONAL" => self.informational += 1,
            "UNIMPLEMENTED" => self.unimplemented += 1,
            _ => self.failed += 1,
        }
        if !matches!(case.behavior_close.as_str(), "OK" | "INFORMATIONAL") {
            self.close_failed += 1;
        }
    }

    fn of<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Counts {
        let mut counts = Counts::default();
        for case in cases {
            counts.add(case);
        }
        counts
    }

    fn total(&self) -> usize {
        self.ok + self.non_strict + self.informational + self.unimplemented + self.failed
    }

    /// A table cell: `16 OK`, or the verdicts present, such as `2 OK, 2 NON-STRICT`.
    fn cell(&self) -> String {
        let parts: Vec<String> = [
            (self.ok, "OK"),
            (self.non_strict, "NON-STRICT"),
            (self.informational, "INFORMATIONAL"),
            (self.unimplemented, "UNIMPLEMENTED"),
            (self.failed, "FAILED"),
            (self.close_failed, "close FAILED"),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, label)| format!("{count} {label}"))
        .collect();
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// What became of one testee.
#[derive(Debug, Clone)]
pub struct TesteeRun {
    /// Its [`Testee::label`].
    pub name: String,
    /// Where its reports are.
    pub directory: PathBuf,
    pub role: Role,
    pub bar: Bar,
    pub result: RunResult,
}

#[derive(Debug, Clone)]
pub enum RunResult {
    /// The suite ran; `problems` lists how the testee fell short of its bar.
    Ran {
        cases: Vec<CaseResult>,
        problems: Vec<String>,
        duration: Duration,
    },
    /// Not run, and not a failure (a client that is not built yet).
    Skipped(String),
    /// It could not be run at all: a failure.
    Broken(String),
}

impl TesteeRun {
    pub fn passed(&self) -> bool {
        match &self.result {
            RunResult::Ran { problems, .. } => problems.is_empty(),
            RunResult::Skipped(_) => true,
            RunResult::Broken(_) => false,
        }
    }
}

/// The Markdown tables: one row per testee, then one row per section.
pub fn render_tables(runs: &[TesteeRun]) -> String {
    let mut text = String::from(
        "| testee | role | bar | OK | NON-STRICT | INFORMATIONAL | UNIMPLEMENTED | FAILED | close FAILED | time | verdict |\n\
         |---|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for run in runs {
        let role = match run.role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let bar = match run.bar {
            Bar::Library => "library",
            Bar::Strict => "strict",
        };
        match &run.result {
            RunResult::Ran {
                cases,
                problems,
                duration,
            } => {
                let counts = Counts::of(cases);
                let verdict = if problems.is_empty() {
                    "passed"
                } else {
                    "FAILED"
                };
                writeln!(
                    text,
                    "| {} | {role} | {bar} | {} | {} | {} | {} | {} | {} | {:.0} s | {verdict} |",
                    run.name,
                    counts.ok,
                    counts.non_strict,
                    counts.informational,
                    counts.unimplemented,
                    counts.failed,
                    counts.close_failed,
                    duration.as_secs_f64(),
                )
                .expect("writing to a String");
            }
            RunResult::Skipped(reason) => {
                writeln!(
                    text,
                    "| {} | {role} | {bar} | | | | | | | | skipped: {reason} |",
                    run.name
                )
                .expect("writing to a String");
            }
            RunResult::Broken(reason) => {
                writeln!(
                    text,
                    "| {} | {role} | {bar} | | | | | | | | FAILED: {} |",
                    run.name,
                    reason.lines().next().unwrap_or_default()
                )
                .expect("writing to a String");
            }
        }
    }

    let ran: Vec<(&TesteeRun, &Vec<CaseResult>)> = runs
        .iter()
        .filter_map(|run| match &run.result {
            RunResult::Ran { cases, .. } => Some((run, cases)),
            _ => None,
        })
        .collect();
    if ran.is_empty() {
        return text;
    }
    text.push_str("\n| section |");
    for (run, _) in &ran {
        write!(text, " {} |", run.name).expect("writing to a String");
    }
    text.push_str("\n|---|");
    text.push_str(&"---|".repeat(ran.len()));
    text.push('\n');
    for (number, title) in SECTION_TITLES {
        let per_testee: Vec<Counts> = ran
            .iter()
            .map(|(_, cases)| Counts::of(cases.iter().filter(|case| section(&case.id) == *number)))
            .collect();
        if per_testee.iter().all(|counts| counts.total() == 0) {
            continue;
        }
        write!(text, "| {number} {title} |").expect("writing to a String");
        for counts in per_testee {
            write!(text, " {} |", counts.cell()).expect("writing to a String");
        }
        text.push('\n');
    }
    text
}

/// `cargo xtask autobahn`: run everything, print the tables and write them into the book.
pub fn run() -> ExitCode {
    let python = match find_python2() {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("xtask: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let runs = match run_all(&python) {
        Ok(runs) => runs,
        Err(error) => {
            eprintln!("xtask: {error}");
            return ExitCode::FAILURE;
        }
    };
    let passed = report(&runs);
    let path = workspace_root().join(BOOK_TABLE);
    match std::fs::write(&path, book_page(&runs)) {
        Ok(()) => println!("wrote the tables to {BOOK_TABLE}"),
        Err(error) => {
            eprintln!("xtask: writing {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The step of `cargo xtask test`: skipped without Python 2.7, unless `CI=true`.
/// Each testee counts as one check. The book's table is left alone.
pub fn test_step() -> StepResult {
    println!("\n==> cargo xtask autobahn");
    let python = match find_python2() {
        Ok(python) => python,
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            eprintln!("xtask: {reason} (CI=true: Autobahn must run)");
            return StepResult::failed_once();
        }
        Err(reason) => return StepResult::skipped(reason),
    };
    let runs = match run_all(&python) {
        Ok(runs) => runs,
        Err(error) => {
            eprintln!("xtask: {error}");
            return StepResult::failed_once();
        }
    };
    let passed = report(&runs);
    let mut counts = TestCounts::default();
    for run in runs.iter().flat_map(|(_, runs)| runs) {
        match run.result {
            RunResult::Skipped(_) => {}
            _ if run.passed() => counts.passed += 1,
            _ => counts.failed += 1,
        }
    }
    StepResult {
        outcome: if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        },
        counts,
    }
}

/// What each suite's testees came to, suite by suite.
type SuiteRuns = Vec<(&'static Suite, Vec<TesteeRun>)>;

/// Prints the tables and every shortfall; returns whether every testee passed.
fn report(suites: &SuiteRuns) -> bool {
    for (suite, runs) in suites {
        println!(
            "\n{} ({} cases):\n{}",
            suite.name,
            suite.case_count,
            render_tables(runs)
        );
    }
    let mut passed = true;
    for run in suites.iter().flat_map(|(_, runs)| runs) {
        match &run.result {
            RunResult::Ran { problems, .. } if !problems.is_empty() => {
                passed = false;
                eprintln!(
                    "autobahn: {} fails its bar ({}): {} problem(s); the report is {}",
                    run.name,
                    run.bar.describe(),
                    problems.len(),
                    run.directory.join("reports/index.html").display()
                );
                for problem in problems.iter().take(20) {
                    eprintln!("  {problem}");
                }
            }
            RunResult::Broken(reason) => {
                passed = false;
                eprintln!("autobahn: {} could not be tested: {reason}", run.name);
                // CI keeps only what is printed: the logs' last lines say where it stopped.
                for log in ["client.log", "wstest.log"] {
                    let path = run.directory.join(log);
                    if path.is_file() {
                        eprintln!(
                            "  last lines of {}:\n{}",
                            path.display(),
                            log_tail(&path, 15)
                        );
                    }
                }
            }
            RunResult::Skipped(reason) => println!("autobahn: {} skipped: {reason}", run.name),
            RunResult::Ran { .. } => {}
        }
    }
    passed
}

/// The generated page: a line on how it was made, then each suite's tables.
fn book_page(suites: &SuiteRuns) -> String {
    let date = command_output("date", &["-u", "+%Y-%m-%d"]);
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let mut page = format!(
        "Autobahn|Testsuite {}, run by `cargo xtask autobahn` on {date} at commit {commit}, \
         debug builds (zlib-rs optimised, as `Cargo.toml` sets), on {}. The time is the wall time of the whole run for that testee.\n",
        SUITE.trim_start_matches("autobahntestsuite=="),
        machine(),
    );
    for (suite, runs) in suites {
        let what = if suite.side_by_side {
            "the testees side by side"
        } else {
            "one testee after the other"
        };
        write!(
            page,
            "\n**Cases {}** ({} cases, {what}):\n\n{}",
            suite.cases.join(", "),
            suite.case_count,
            render_tables(runs)
        )
        .expect("writing to a String");
    }
    page
}

/// Installs the suite, builds the testees and runs every suite of [`SUITES`].
fn run_all(python: &Path) -> Result<SuiteRuns, String> {
    let wstest = install_suite(python)?;
    build_testees()?;
    Ok(SUITES
        .iter()
        .map(|&suite| (suite, run_suite(python, &wstest, suite)))
        .collect())
}

/// Runs each server and client of `suite`, at the same time if it says so.
fn run_suite(python: &Path, wstest: &Path, suite: &'static Suite) -> Vec<TesteeRun> {
    let testees: Vec<(Role, Testee)> = (suite.servers.iter().map(|&testee| (Role::Server, testee)))
        .chain(suite.clients.iter().map(|&testee| (Role::Client, testee)))
        .collect();
    if !suite.side_by_side {
        return testees
            .into_iter()
            .map(|(role, testee)| run_testee(python, wstest, suite, role, testee))
            .collect();
    }
    thread::scope(|scope| {
        let threads: Vec<_> = testees
            .into_iter()
            .map(|(role, testee)| {
                scope.spawn(move || run_testee(python, wstest, suite, role, testee))
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("an Autobahn testee's thread panicked"))
            .collect()
    })
}

fn run_testee(
    python: &Path,
    wstest: &Path,
    suite: &Suite,
    role: Role,
    testee: Testee,
) -> TesteeRun {
    let directory = autobahn_dir().join(suite.name).join(testee.name);
    let label = testee.label();
    let started = Instant::now();
    let binary = example_path(testee.name);
    let outcome = match role {
        Role::Server => {
            println!(
                "\n==> autobahn: {}: fuzzingclient against the {label} server",
                suite.name
            );
            test_server(python, wstest, suite, testee, &directory).map(Some)
        }
        Role::Client if binary.is_file() => {
            println!(
                "\n==> autobahn: {}: fuzzingserver against the {label} client",
                suite.name
            );
            test_client(python, wstest, suite, testee, &binary, &directory).map(Some)
        }
        Role::Client => {
            println!(
                "\n==> autobahn: {}: {label} is not built yet: skipped",
                suite.name
            );
            Ok(None)
        }
    };
    let result = match outcome {
        Ok(None) => RunResult::Skipped(format!("not built yet ({} missing)", binary.display())),
        Ok(Some(cases)) => {
            let duration = started.elapsed();
            println!(
                "    {label} ({}): {} cases in {:.1} s",
                suite.name,
                cases.len(),
                duration.as_secs_f64()
            );
            RunResult::Ran {
                problems: shortfalls(&cases, testee.bar, suite.case_count),
                cases,
                duration,
            }
        }
        Err(error) => RunResult::Broken(error),
    };
    TesteeRun {
        name: label,
        directory,
        role,
        bar: testee.bar,
        result,
    }
}

/// `target/autobahn`: specs, logs, reports and the Python packages.
fn autobahn_dir() -> PathBuf {
    workspace_root().join("target/autobahn")
}

fn example_path(name: &str) -> PathBuf {
    workspace_root()
        .join("target/debug/examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// A CPython 2.7: `$WSSE_PYTHON2`, else pyenv's newest 2.7, else `python2.7` or
/// `python2` on the PATH. Each candidate must report version 2.7 when run.
fn find_python2() -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("WSSE_PYTHON2") {
        let explicit = PathBuf::from(explicit);
        return if is_python27(&explicit) {
            Ok(explicit)
        } else {
            Err(format!(
                "WSSE_PYTHON2={} is not a working Python 2.7",
                explicit.display()
            ))
        };
    }
    let mut candidates = Vec::new();
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")));
    if let Some(versions) = pyenv_root.map(|root| root.join("versions"))
        && let Ok(entries) = std::fs::read_dir(&versions)
    {
        let mut found: Vec<(Vec<u32>, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.starts_with("2.7.")
                    .then(|| (case_key(&name), entry.path().join("bin/python")))
            })
            .collect();
        // Newest first: 2.7.18 before 2.7.9.
        found.sort_by(|newer, older| older.0.cmp(&newer.0));
        candidates.extend(found.into_iter().map(|(_, path)| path));
    }
    candidates.push(PathBuf::from("python2.7"));
    candidates.push(PathBuf::from("python2"));
    candidates
        .into_iter()
        .find(|candidate| is_python27(candidate))
        .ok_or_else(|| {
            "no Python 2.7 found (Autobahn|Testsuite needs it): set WSSE_PYTHON2, or install \
             2.7 with pyenv"
                .to_owned()
        })
}

fn is_python27(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A Python command with the suite's packages on its path (`pip install --user`
/// with `PYTHONUSERBASE` puts them in `target/`, away from the system's).
fn python_command(python: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .env("PYTHONUSERBASE", autobahn_dir().join("python"))
        .env_remove("PYTHONNOUSERSITE")
        .current_dir(autobahn_dir());
    command
}

/// Installs the suite unless the same pinned set is there already; returns the
/// path of the `wstest` script.
fn install_suite(python: &Path) -> Result<PathBuf, String> {
    let user_base = autobahn_dir().join("python");
    let wstest = user_base.join("bin/wstest");
    let marker = user_base.join("installed.txt");
    let wanted = format!("{}\n{SUITE}\n", REQUIREMENTS.join("\n"));
    if wstest.is_file() && std::fs::read_to_string(&marker).is_ok_and(|text| text == wanted) {
        return Ok(wstest);
    }
    std::fs::create_dir_all(&user_base)
        .map_err(|error| format!("{}: {error}", user_base.display()))?;
    println!(
        "\n==> autobahn: installing {SUITE} into {}",
        user_base.display()
    );
    let has_pip = python_command(python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !has_pip {
        check_status(
            python_command(python).args(["-m", "ensurepip", "--user"]),
            "installing pip",
        )?;
    }
    let pip_install = [
        "-m",
        "pip",
        "install",
        "--user",
        "--disable-pip-version-check",
    ];
    check_status(
        python_command(python)
            .args(pip_install)
            .arg("--no-warn-script-location")
            .args(REQUIREMENTS),
        "installing the suite's dependencies",
    )?;
    check_status(
        python_command(python)
            .args(pip_install)
            .args(["--no-deps", SUITE]),
        "installing the suite",
    )?;
    if !wstest.is_file() {
        return Err(format!("pip installed no {}", wstest.display()));
    }
    std::fs::write(&marker, wanted).map_err(|error| format!("{}: {error}", marker.display()))?;
    Ok(wstest)
}

fn check_status(command: &mut Command, what: &str) -> Result<(), String> {
    match run_streamed(command) {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{what}: `{}` failed ({status})", describe(command))),
        Err(error) => Err(format!(
            "{what}: cannot run `{}`: {error}",
            describe(command)
        )),
    }
}

/// Builds every server and every client whose source exists (a client still being
/// written has none, and is skipped later).
fn build_testees() -> Result<(), String> {
    let mut command = cargo(["build"]);
    let mut names: Vec<&str> = SUITES
        .iter()
        .flat_map(|suite| suite.servers.iter().chain(suite.clients))
        .map(|testee| testee.name)
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        if workspace_root()
            .join(format!("examples/{name}.rs"))
            .is_file()
        {
            command.args(["--example", name]);
        }
    }
    check_status(&mut command, "building the servers and clients")
}

/// Starts the server, points `wstest -m fuzzingclient` at its `/echo`, and reads
/// the results.
fn test_server(
    python: &Path,
    wstest: &Path,
    suite: &Suite,
    testee: Testee,
    directory: &Path,
) -> Result<Vec<CaseResult>, String> {
    let name = testee.name;
    fresh_dir(directory)?;
    let mut server = ServerProcess::spawn_binary(name, &example_path(name), testee.arguments)?;
    let spec = serde_json::json!({
        "outdir": directory.join("reports"),
        "servers": [{ "agent": name, "url": format!("ws://{}/echo", server.addr()) }],
        "cases": suite.cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    });
    let spec_path = write_spec(directory, "fuzzingclient.json", &spec)?;
    let mut command = python_command(python);
    command
        .arg(wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path);
    let log = directory.join("wstest.log");
    let status = run_logged(&mut command, &log, suite.timeout)?;
    if let Ok(Some(exit)) = server.try_wait() {
        return Err(format!(
            "the server exited during the run ({exit}); its stderr:\n{}",
            server.stderr_tail()
        ));
    }
    server.kill();
    if !status.success() {
        return Err(format!("wstest failed ({status}); see {}", log.display()));
    }
    let mut agents = read_index(directory)?;
    agents
        .remove(name)
        .ok_or_else(|| format!("no results for {name} in the report"))
}

/// Starts `wstest -m fuzzingserver` on a free port, runs the client against it, and
/// reads the results of the one agent the client reported as.
fn test_client(
    python: &Path,
    wstest: &Path,
    suite: &Suite,
    testee: Testee,
    binary: &Path,
    directory: &Path,
) -> Result<Vec<CaseResult>, String> {
    fresh_dir(directory)?;
    let log = directory.join("wstest.log");
    // A port the kernel just said is free; another process (the other testee's
    // run, side by side) could take it before wstest binds it, so try a few.
    let mut attempts = 0;
    let (address, fuzzing_server) = loop {
        let address = free_addr().map_err(|error| error.to_string())?;
        let spec = serde_json::json!({
            "url": format!("ws://{address}"),
            "outdir": directory.join("reports"),
            "cases": suite.cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        });
        let spec_path = write_spec(directory, "fuzzingserver.json", &spec)?;
        let mut command = python_command(python);
        // `--webport 0`: no web server of its own, which would want port 8080.
        command
            .arg(wstest)
            .args(["-m", "fuzzingserver", "--webport", "0", "-s"])
            .arg(&spec_path);
        let mut fuzzing_server = ChildGuard(spawn_logged(&mut command, &log)?);
        attempts += 1;
        match wait_until_listening(&mut fuzzing_server.0, address, &log) {
            Ok(()) => break (address, fuzzing_server),
            Err(error) if attempts < 3 && log_tail(&log, 5).contains("CannotListenError") => {
                println!("    {address} was taken before wstest bound it: another port ({error})");
            }
            Err(error) => return Err(error),
        }
    };

    let client_log = directory.join("client.log");
    let mut client = Command::new(binary);
    client
        .args(testee.arguments)
        .arg("--autobahn")
        .arg(format!("ws://{address}"))
        .current_dir(directory);
    let status = run_logged(&mut client, &client_log, suite.timeout)?;
    drop(fuzzing_server);
    if !status.success() {
        return Err(format!(
            "the client failed ({status}); see {}",
            client_log.display()
        ));
    }
    let agents = read_index(directory)?;
    let mut agents = agents.into_iter();
    match (agents.next(), agents.next()) {
        (Some((_, cases)), None) => Ok(cases),
        (None, _) => Err("the client reported no results".to_owned()),
        (Some(_), Some(_)) => Err("the report holds more than one agent".to_owned()),
    }
}

/// A child process killed and reaped when dropped, whatever happens in between.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The last `lines` lines of a log, indented, or why it could not be read.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..]
                .iter()
                .map(|line| format!("    {line}\n"))
                .collect()
        }
        Err(error) => format!("    ({}: {error})\n", path.display()),
    }
}

/// Empties a testee's folder, so that no old report is read by mistake.
fn fresh_dir(directory: &Path) -> Result<(), String> {
    if directory.exists() {
        std::fs::remove_dir_all(directory)
            .map_err(|error| format!("{}: {error}", directory.display()))?;
    }
    std::fs::create_dir_all(directory).map_err(|error| format!("{}: {error}", directory.display()))
}

fn write_spec(directory: &Path, file: &str, spec: &serde_json::Value) -> Result<PathBuf, String> {
    let path = directory.join(file);
    let text = serde_json::to_string_pretty(spec).expect("a JSON value serializes");
    std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(path)
}

fn read_index(directory: &Path) -> Result<BTreeMap<String, Vec<CaseResult>>, String> {
    let path = directory.join("reports/index.json");
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    parse_index(&text)
}

/// Starts `command` with stdout and stderr going to `log`.
fn spawn_logged(command: &mut Command, log: &Path) -> Result<Child, String> {
    let file = File::create(log).map_err(|error| format!("{}: {error}", log.display()))?;
    let copy = file
        .try_clone()
        .map_err(|error| format!("{}: {error}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(copy)
        .spawn()
        .map_err(|error| format!("cannot run `{}`: {error}", describe(command)))
}

/// Runs `command` to its end with its output in `log`; kills it after `timeout`.
fn run_logged(command: &mut Command, log: &Path, timeout: Duration) -> Result<ExitStatus, String> {
    println!("    {} (output in {})", describe(command), log.display());
    let mut child = ChildGuard(spawn_logged(command, log)?);
    let deadline = Instant::now() + timeout;
    loop {
        match child.0.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                return Err(format!(
                    "`{}` still ran after {} s, killed; see {}",
                    describe(command),
                    timeout.as_secs(),
                    log.display()
                ));
            }
            Err(error) => return Err(format!("waiting for `{}`: {error}", describe(command))),
        }
    }
}

/// Waits until the fuzzing server accepts connections, at most 30 s. It takes its
/// port from its spec and cannot report one it picked itself, hence the probe.
/// Something else listening on the port (wstest then fails to bind it and exits)
/// would pass the probe, so wstest must still run a moment after it.
fn wait_until_listening(child: &mut Child, address: SocketAddr, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut accepted = false;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "wstest -m fuzzingserver exited ({status}); see {}",
                log.display()
            ));
        }
        if accepted {
            return Ok(());
        }
        if accepts_connections(address) {
            accepted = true;
            thread::sleep(Duration::from_millis(500));
            continue;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "wstest -m fuzzingserver did not listen on {address} within 30 s; see {}",
                log.display()
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, behavior: &str, behavior_close: &str) -> CaseResult {
        CaseResult {
            id: id.to_owned(),
            behavior: behavior.to_owned(),
            behavior_close: behavior_close.to_owned(),
        }
    }

    /// Three cases as `index.json` has them, one of them FAILED.
    const INDEX_WITH_A_FAILURE: &str = r#"{
        "scratch": {
            "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 2,
                      "remoteCloseCode": 1000, "reportfile": "scratch_case_1_1_1.json"},
            "6.10.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 1,
                       "remoteCloseCode": 1007, "reportfile": "scratch_case_6_10_1.json"},
            "6.9.1": {"behavior": "FAILED", "behaviorClose": "OK", "duration": 1,
                      "remoteCloseCode": null, "reportfile": "scratch_case_6_9_1.json"}
        }
    }"#;

    #[test]
    fn reads_the_index_and_sorts_cases_by_number() {
        let agents = parse_index(INDEX_WITH_A_FAILURE).unwrap();
        let cases = &agents["scratch"];
        let ids: Vec<&str> = cases.iter().map(|case| case.id.as_str()).collect();
        assert_eq!(ids, ["1.1.1", "6.9.1", "6.10.1"]);
        assert_eq!(cases[1], case("6.9.1", "FAILED", "OK"));
    }

    #[test]
    fn a_failed_case_fails_both_bars() {
        let agents = parse_index(INDEX_WITH_A_FAILURE).unwrap();
        for bar in [Bar::Library, Bar::Strict] {
            let problems = shortfalls(&agents["scratch"], bar, 3);
            assert_eq!(problems, ["case 6.9.1: FAILED, close OK"], "{bar:?}");
        }
    }

    #[test]
    fn non_strict_and_unimplemented_pass_only_the_library_bar() {
        let cases = [
            case("6.4.3", "NON-STRICT", "OK"),
            case("12.1.1", "UNIMPLEMENTED", "UNIMPLEMENTED"),
            case("7.1.6", "INFORMATIONAL", "INFORMATIONAL"),
        ];
        assert_eq!(
            shortfalls(&cases[..1], Bar::Library, 1),
            Vec::<String>::new()
        );
        assert_eq!(
            shortfalls(&cases[2..], Bar::Strict, 1),
            Vec::<String>::new()
        );
        assert_eq!(
            shortfalls(&cases[..1], Bar::Strict, 1),
            ["case 6.4.3: NON-STRICT, close OK"]
        );
        // An unimplemented case also has an unimplemented close: not a clean close.
        assert_eq!(shortfalls(&cases[1..2], Bar::Library, 1).len(), 1);
    }

    #[test]
    fn a_close_that_is_not_ok_fails_the_library_bar() {
        let cases = [case("1.2.2", "OK", "FAILED BY CLIENT")];
        assert_eq!(
            shortfalls(&cases, Bar::Library, 1),
            ["case 1.2.2: OK, close FAILED BY CLIENT"]
        );
    }

    #[test]
    fn missing_cases_fail() {
        let cases = [case("1.1.1", "OK", "OK")];
        assert_eq!(
            shortfalls(&cases, Bar::Strict, CASE_COUNT),
            [format!("ran 1 cases, expected {CASE_COUNT}")]
        );
    }

    #[test]
    fn each_suite_has_its_own_folder_and_labels_its_testees() {
        let mut names: Vec<&str> = SUITES.iter().map(|suite| suite.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SUITES.len());
        assert_eq!(COMPRESSION.clients[0].label(), "wire_client --deflate");
        assert_eq!(PROTOCOL.clients[0].label(), "wire_client");
        // The compression cases are sections 12 and 13, which the tables can name.
        for group in COMPRESSION.cases {
            let section: u32 = group.trim_end_matches(".*").parse().unwrap();
            assert!(SECTION_TITLES.iter().any(|(number, _)| *number == section));
        }
    }

    #[test]
    fn malformed_indexes_are_errors() {
        for text in [
            "",
            "[]",
            r#"{"axum": []}"#,
            r#"{"axum": {"1.1.1": {"behavior": "OK"}}}"#,
        ] {
            assert!(parse_index(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn tables_count_by_testee_and_by_section() {
        let agents = parse_index(INDEX_WITH_A_FAILURE).unwrap();
        let cases = agents["scratch"].clone();
        let runs = [
            TesteeRun {
                name: "scratch".to_owned(),
                directory: PathBuf::from("target/autobahn/protocol/scratch"),
                role: Role::Server,
                bar: Bar::Strict,
                result: RunResult::Ran {
                    problems: shortfalls(&cases, Bar::Strict, 3),
                    cases,
                    duration: Duration::from_secs(21),
                },
            },
            TesteeRun {
                name: "chat_client".to_owned(),
                directory: PathBuf::from("target/autobahn/protocol/chat_client"),
                role: Role::Client,
                bar: Bar::Library,
                result: RunResult::Skipped("not built yet".to_owned()),
            },
        ];
        let table = render_tables(&runs);
        assert!(
            table.contains("| scratch | server | strict | 2 | 0 | 0 | 0 | 1 | 0 | 21 s | FAILED |"),
            "{table}"
        );
        assert!(
            table.contains("| chat_client | client | library |"),
            "{table}"
        );
        assert!(table.contains("skipped: not built yet"), "{table}");
        assert!(table.contains("| 1 Framing | 1 OK |"), "{table}");
        assert!(
            table.contains("| 6 UTF-8 handling | 1 OK, 1 FAILED |"),
            "{table}"
        );
        // Sections without cases are left out.
        assert!(!table.contains("Pings"), "{table}");
        assert!(!runs[0].passed());
        assert!(runs[1].passed());
    }
}
