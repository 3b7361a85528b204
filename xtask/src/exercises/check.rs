//! The `exercises` step of `cargo xtask test` (alone: `cargo xtask exercises
//! --check`): the starter compiles and every exercise has a failing test, and
//! the same workspace with the solutions kept passes.

use std::process::ExitCode;

use super::EXERCISES;
use super::starter::{Variant, generate};
use crate::process::{cargo, run_teed, workspace_root};
use crate::test::{StepResult, TestCounts, parse_test_result_line};

/// The step of `cargo xtask test` that proves the starter is what it should be:
/// the generated starter workspace compiles and every exercise has failing
/// tests; the same workspace with the solutions kept passes every test. Counts
/// the solutions' tests, plus one check for the starter.
pub fn test_step() -> StepResult {
    println!("\n==> exercises: the starter compiles and fails, the solutions pass");
    let root = workspace_root().join("target/exercises-check");
    let starter = root.join("starter");
    let solved = root.join("solved");
    // Both workspaces share their dependencies' builds. Cargo names the
    // exercise crate's artifacts the same in both and tells stale from fresh by
    // modification times, so each workspace is written just before it is built.
    let target_dir = workspace_root().join("target/exercises-target");
    if let Err(error) = generate(&starter, Variant::Starter) {
        eprintln!("exercises: {error}");
        return StepResult::failed_once();
    }

    let mut starter_tests = Vec::new();
    let mut command = cargo(["test", "--no-fail-fast", "--all-targets"]);
    command
        .current_dir(&starter)
        .env("CARGO_TARGET_DIR", &target_dir);
    if let Err(error) = run_teed(&mut command, |line| {
        starter_tests.extend(parse_test_line(line));
    }) {
        eprintln!(
            "exercises: cannot run cargo test in {}: {error}",
            starter.display()
        );
        return StepResult::failed_once();
    }
    let starter_verdict = starter_verdict(&starter_tests);
    match &starter_verdict {
        Ok(summary) => println!("exercises: starter: {summary}"),
        Err(problem) => eprintln!("exercises: starter: {problem}"),
    }

    if let Err(error) = generate(&solved, Variant::WithSolutions) {
        eprintln!("exercises: {error}");
        return StepResult::failed_once();
    }
    let mut command = cargo(["test", "--no-fail-fast", "--all-targets"]);
    command
        .current_dir(&solved)
        .env("CARGO_TARGET_DIR", &target_dir);
    let mut counts = TestCounts::default();
    let status = run_teed(&mut command, |line| {
        if let Some(found) = parse_test_result_line(line) {
            counts += found;
        }
    });
    let solved_ok = match status {
        Ok(status) => status.success() && counts.failed == 0 && counts.passed > 0,
        Err(error) => {
            eprintln!(
                "exercises: cannot run cargo test in {}: {error}",
                solved.display()
            );
            false
        }
    };
    if !solved_ok && counts.failed == 0 {
        counts.failed = 1;
    }
    if starter_verdict.is_ok() {
        counts.passed += 1;
    } else {
        counts.failed += 1;
    }
    StepResult {
        outcome: if solved_ok && starter_verdict.is_ok() {
            crate::test::Outcome::Passed
        } else {
            crate::test::Outcome::Failed
        },
        counts,
    }
}

/// `cargo xtask exercises --check`: [`test_step`] on its own.
pub fn check() -> ExitCode {
    let result = test_step();
    println!(
        "exercises: {:?}: {} passed, {} failed",
        result.outcome, result.counts.passed, result.counts.failed
    );
    if result.outcome == crate::test::Outcome::Passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `test MODULE::tests::NAME ... ok` (or `FAILED`) as the test's full name and
/// whether it passed.
pub fn parse_test_line(line: &str) -> Option<(String, bool)> {
    let rest = line.trim().strip_prefix("test ")?;
    let (name, verdict) = rest.rsplit_once(" ... ")?;
    match verdict.trim() {
        "ok" => Some((name.to_owned(), true)),
        "FAILED" => Some((name.to_owned(), false)),
        _ => None,
    }
}

/// Every exercise has at least one failing test in the starter (which also
/// means the starter compiled: a crate that does not compile runs no test).
pub fn starter_verdict(tests: &[(String, bool)]) -> Result<String, String> {
    let mut missing = Vec::new();
    for exercise in EXERCISES
        .iter()
        .filter(|exercise| exercise.module != "capstone")
    {
        let prefix = format!("{}::", exercise.module);
        let failing = tests
            .iter()
            .any(|(name, passed)| name.starts_with(&prefix) && !passed);
        if !failing {
            missing.push(exercise.module);
        }
    }
    let failed = tests.iter().filter(|(_, passed)| !passed).count();
    if tests.is_empty() {
        Err("no test ran: the starter does not compile, or its tests do not".to_owned())
    } else if !missing.is_empty() {
        Err(format!(
            "no failing test for {} (is a solution left in the starter?)",
            missing.join(", ")
        ))
    } else {
        Ok(format!(
            "{failed} of {} tests fail, at least one per exercise, as they should",
            tests.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_verdict_wants_a_failure_per_exercise() {
        let mut tests: Vec<(String, bool)> = EXERCISES
            .iter()
            .filter(|exercise| exercise.module != "capstone")
            .map(|exercise| (format!("{}::tests::a", exercise.module), false))
            .collect();
        tests.push(("unmask::tests::b".to_owned(), true));
        assert!(starter_verdict(&tests).is_ok());
        tests[0].1 = true;
        assert!(starter_verdict(&tests).unwrap_err().contains("accept_key"));
        assert!(starter_verdict(&[]).unwrap_err().contains("compile"));
    }

    #[test]
    fn reads_test_lines() {
        assert_eq!(
            parse_test_line("test unmask::tests::rfc ... FAILED"),
            Some(("unmask::tests::rfc".to_owned(), false))
        );
        assert_eq!(
            parse_test_line("test a::b ... ok"),
            Some(("a::b".to_owned(), true))
        );
        assert_eq!(parse_test_line("test result: ok. 1 passed; 0 failed"), None);
        assert_eq!(parse_test_line("running 3 tests"), None);
    }
}
