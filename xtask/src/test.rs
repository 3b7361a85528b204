//! `cargo xtask test`: every check the project has, as a list of steps.
//!
//! A step is a name plus a function that runs it and reports an [`Outcome`]
//! and the test cases it counted. A step whose tool is missing (the Autobahn
//! suite without Python 2.7) reports [`Outcome::Skipped`] with the reason
//! instead of failing. A test that cannot run here (no Chromium, no redis-server)
//! passes in libtest's eyes but prints a `skipped: ...` line; the step counts it as
//! skipped, not passed (under `CI=true` such a test fails instead).

use std::ops::AddAssign;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::process::{cargo, describe, run_streamed, run_teed};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// The step did not run; the reason is shown to the user.
    Skipped(String),
}

/// Test cases counted by a step. A whole-step check such as fmt counts as one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// Tests that printed a `skipped:` line: libtest counts them as passed.
    pub skipped: u64,
}

impl AddAssign for TestCounts {
    fn add_assign(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.skipped += other.skipped;
    }
}

/// What running a step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub outcome: Outcome,
    pub counts: TestCounts,
}

impl StepResult {
    /// A step that is a single check (fmt, clippy): one passed or one failed.
    fn check(passed: bool) -> Self {
        if passed {
            Self {
                outcome: Outcome::Passed,
                counts: TestCounts {
                    passed: 1,
                    ..TestCounts::default()
                },
            }
        } else {
            Self::failed_once()
        }
    }

    pub fn failed_once() -> Self {
        Self {
            outcome: Outcome::Failed,
            counts: TestCounts {
                failed: 1,
                ..TestCounts::default()
            },
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Skipped(reason.into()),
            counts: TestCounts::default(),
        }
    }
}

/// One step of `cargo xtask test`.
pub struct Step {
    pub name: &'static str,
    pub run: fn() -> StepResult,
}

/// The steps, in the order they run.
pub const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        run: fmt,
    },
    Step {
        name: "clippy",
        run: clippy,
    },
    Step {
        name: "tests",
        run: cargo_test,
    },
    Step {
        name: "exercises",
        run: crate::exercises::test_step,
    },
    // Before the servers step: tests/browser.rs opens the built book in Chromium.
    Step {
        name: "book",
        run: book,
    },
    Step {
        name: "servers",
        run: server_tests,
    },
    Step {
        name: "autobahn",
        run: crate::autobahn::test_step,
    },
];

pub fn run() -> ExitCode {
    let mut reports = Vec::new();
    for step in STEPS {
        let started = Instant::now();
        let result = (step.run)();
        let duration = started.elapsed();
        if let Outcome::Skipped(reason) = &result.outcome {
            println!("\n==> {}: skipped: {reason}", step.name);
        }
        reports.push((step.name, result, duration));
    }

    println!();
    print!("{}", summary_table(&reports));
    let any_failed = reports
        .iter()
        .any(|(_, result, _)| result.outcome == Outcome::Failed);
    if any_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn fmt() -> StepResult {
    run_check(&mut cargo(["fmt", "--all", "--", "--check"]))
}

/// The book builds with no warning, no missing include or anchor and no broken link.
fn book() -> StepResult {
    println!("\n==> cargo xtask book");
    let problems = crate::book::build();
    for problem in &problems {
        eprintln!("book: {problem}");
    }
    StepResult::check(problems.is_empty())
}

fn clippy() -> StepResult {
    run_check(&mut cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Every crate's tests. `--no-fail-fast` so that a failing test binary does not
/// hide the results of the others (and of the doc-tests, which run last). The
/// root package is left to [`server_tests`], but its examples are built first:
/// the load generator's smoke test starts the from-scratch server.
fn cargo_test() -> StepResult {
    let built = run_check(&mut cargo(["build", "-p", "wsse", "--examples"]));
    if built.outcome != Outcome::Passed {
        eprintln!("xtask: the examples do not build; the crate tests that start them would fail");
        return StepResult::failed_once();
    }
    // `--nocapture`, so that a test's `skipped:` line reaches the count.
    counted_cargo_test(&[
        "test",
        "--workspace",
        "--exclude",
        "wsse",
        "--no-fail-fast",
        "--",
        "--nocapture",
    ])
}

/// The root package's tests: the conformance matrix (every scenario against every
/// server), the clients we did not write, and the page and the book in Chromium
/// (which print a `skipped:` line, with the install command, when it is missing). `--nocapture` so the matrix is shown
/// even when everything passes; `cargo test` builds the examples first.
fn server_tests() -> StepResult {
    counted_cargo_test(&["test", "-p", "wsse", "--no-fail-fast", "--", "--nocapture"])
}

fn counted_cargo_test(arguments: &[&str]) -> StepResult {
    let mut command = cargo(arguments);
    let mut counts = TestCounts::default();
    let status = run_teed(&mut command, |line| {
        if let Some(found) = parse_test_result_line(line) {
            counts += found;
        } else if is_skip_line(line) {
            counts.skipped += 1;
        }
    });
    // libtest counted the skipped tests as passed.
    counts.passed = counts.passed.saturating_sub(counts.skipped);
    match status {
        Ok(status) => tests_result(status.success(), counts),
        Err(error) => {
            eprintln!("xtask: could not run `{}`: {error}", describe(&command));
            StepResult::failed_once()
        }
    }
}

/// Turn the exit status and the counted cases of `cargo test` into a result.
/// A failure with no failed case (a compile error, a crashed test binary)
/// still has to show in the summary, so it counts as one failed case.
fn tests_result(success: bool, mut counts: TestCounts) -> StepResult {
    if !success && counts.failed == 0 {
        counts.failed = 1;
    }
    let outcome = if success && counts.failed == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    StepResult { outcome, counts }
}

fn run_check(command: &mut std::process::Command) -> StepResult {
    match run_streamed(command) {
        Ok(status) => StepResult::check(status.success()),
        Err(error) => {
            eprintln!("xtask: could not run `{}`: {error}", describe(command));
            StepResult::failed_once()
        }
    }
}

/// Parse libtest's closing line for one test binary (or the doc-tests), e.g.
/// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
/// Returns `None` for every other line.
pub fn parse_test_result_line(line: &str) -> Option<TestCounts> {
    let line = strip_ansi_escapes(line);
    let rest = line.trim().strip_prefix("test result:")?.trim_start();
    // The verdict ("ok." or "FAILED.") is followed by the counts; the counts
    // alone decide the numbers.
    let (_verdict, counts_text) = rest.split_once(". ")?;
    let (mut passed, mut failed, mut ignored) = (None, None, None);
    for part in counts_text.split(';') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(label)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match label {
            "passed" => passed = Some(number),
            "failed" => failed = Some(number),
            "ignored" => ignored = Some(number),
            _ => {}
        }
    }
    Some(TestCounts {
        passed: passed?,
        failed: failed?,
        ignored: ignored.unwrap_or(0),
        skipped: 0,
    })
}

/// A test's note that it could not run here: `skipped: WHAT: WHY; install it with: ...`.
pub fn is_skip_line(line: &str) -> bool {
    strip_ansi_escapes(line)
        .trim_start()
        .starts_with("skipped: ")
}

/// Remove terminal colour codes (`ESC [ ... letter`), in case a test binary
/// was told to colour its output even though it is piped to us.
fn strip_ansi_escapes(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                // Parameters and intermediates run up to a final byte in '@'..='~'.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The table of steps followed by the `summary:` line.
fn summary_table(reports: &[(&str, StepResult, Duration)]) -> String {
    let mut table = String::from("step       result   time     cases\n");
    let mut total = TestCounts::default();
    for (name, result, duration) in reports {
        total += result.counts;
        let (verdict, detail) = match &result.outcome {
            Outcome::Passed => ("ok", String::new()),
            Outcome::Failed => ("FAILED", String::new()),
            Outcome::Skipped(reason) => ("skipped", format!(" ({reason})")),
        };
        let counts = &result.counts;
        let cases = if matches!(result.outcome, Outcome::Skipped(_)) {
            String::from("-")
        } else {
            let mut cases = format!("{} passed, {} failed", counts.passed, counts.failed);
            if counts.ignored > 0 {
                cases.push_str(&format!(", {} ignored", counts.ignored));
            }
            if counts.skipped > 0 {
                cases.push_str(&format!(", {} skipped", counts.skipped));
            }
            cases
        };
        let time = format!("{:.1}s", duration.as_secs_f64());
        table.push_str(&format!(
            "{name:<10} {verdict:<8} {time:<8} {cases}{detail}\n"
        ));
    }
    table.push_str(&format!(
        "summary: {} passed, {} failed{}\n",
        total.passed,
        total.failed,
        if total.skipped > 0 {
            format!(", {} skipped (see the `skipped:` lines)", total.skipped)
        } else {
            String::new()
        }
    ));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(passed: u64, failed: u64, ignored: u64) -> TestCounts {
        TestCounts {
            passed,
            failed,
            ignored,
            skipped: 0,
        }
    }

    #[test]
    fn skip_lines_are_told_apart() {
        assert!(is_skip_line(
            "skipped: the servers behind nginx: `nginx -v` does not run; install it with: apt-get"
        ));
        assert!(is_skip_line("\u{1b}[2m  skipped: no Chromium"));
        assert!(!is_skip_line("test browser ... ok"));
        assert!(!is_skip_line("autobahn: scratch skipped: not built"));
    }

    #[test]
    fn skipped_tests_show_in_the_table_and_the_summary() {
        let mut servers = counts(10, 0, 0);
        servers.skipped = 2;
        let table = summary_table(&[(
            "servers",
            tests_result(true, servers),
            Duration::from_secs(1),
        )]);
        assert!(table.contains("10 passed, 0 failed, 2 skipped"), "{table}");
        assert!(
            table.contains("summary: 10 passed, 0 failed, 2 skipped"),
            "{table}"
        );
    }

    #[test]
    fn parses_a_passing_result_line() {
        let line = "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(parse_test_result_line(line), Some(counts(12, 0, 1)));
    }

    #[test]
    fn parses_a_failing_result_line() {
        let line = "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.42s";
        assert_eq!(parse_test_result_line(line), Some(counts(3, 2, 0)));
    }

    #[test]
    fn parses_the_doc_test_result_line() {
        // Doc-tests print the same line, after a "Doc-tests wsse_wire" header.
        let line = "test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.03s";
        assert_eq!(parse_test_result_line(line), Some(counts(7, 0, 0)));
    }

    #[test]
    fn parses_a_coloured_result_line() {
        let line = "test result: \u{1b}[32mok\u{1b}[0m. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s";
        assert_eq!(parse_test_result_line(line), Some(counts(4, 0, 0)));
    }

    #[test]
    fn ignores_other_lines() {
        for line in [
            "",
            "running 12 tests",
            "test frame::tests::decodes_a_masked_frame ... ok",
            "test result:",
            "   Doc-tests wsse_wire",
            "error: test failed, to rerun pass `-p wsse-wire --lib`",
            "failures:",
        ] {
            assert_eq!(parse_test_result_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn adds_up_a_whole_cargo_test_run() {
        let output = "\
running 2 tests
test a ... ok
test b ... FAILED

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests wsse_wire

running 3 tests
test src/lib.rs - (line 3) ... ignored

test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.30s
";
        let mut total = TestCounts::default();
        for line in output.lines() {
            if let Some(found) = parse_test_result_line(line) {
                total += found;
            }
        }
        assert_eq!(total, counts(3, 1, 1));
    }

    #[test]
    fn a_cargo_test_that_does_not_compile_counts_as_one_failure() {
        let result = tests_result(false, TestCounts::default());
        assert_eq!(result.outcome, Outcome::Failed);
        assert_eq!(result.counts, counts(0, 1, 0));
    }

    #[test]
    fn failing_cases_are_counted_as_reported() {
        let result = tests_result(false, counts(5, 2, 0));
        assert_eq!(result.outcome, Outcome::Failed);
        assert_eq!(result.counts, counts(5, 2, 0));
    }

    #[test]
    fn summary_counts_checks_and_cases_and_skips_nothing() {
        let reports = [
            ("fmt", StepResult::check(true), Duration::from_millis(400)),
            ("clippy", StepResult::check(false), Duration::from_secs(12)),
            (
                "tests",
                tests_result(true, counts(40, 0, 2)),
                Duration::from_secs(30),
            ),
            (
                "browser",
                StepResult::skipped("no Chromium found"),
                Duration::ZERO,
            ),
        ];
        let table = summary_table(&reports);
        assert_eq!(table.lines().last(), Some("summary: 41 passed, 1 failed"));
        assert!(table.contains("clippy     FAILED   12.0s"), "{table}");
        assert!(table.contains("browser    skipped"), "{table}");
        assert!(table.contains("(no Chromium found)"), "{table}");
    }
}
