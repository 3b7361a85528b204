//! `cargo xtask exercises`: the learner's starter workspace, made from
//! `crates/exercises` by taking the solutions out.
//!
//! In the exercise crate every solution sits between `// ANCHOR: solution...`
//! and `// ANCHOR_END: solution...` lines (the book includes those regions on
//! its solution pages). The starter gets, in place of each such region, the
//! `// STARTER: ` lines that follow it, uncommented, or `todo!()` when there are
//! none; a region named `hidden...` (a struct's fields, private helpers) is
//! replaced by a `// TODO` line. The tests are left as they are, so in the
//! starter they fail until the learner has written the solutions. The starter's
//! `src/lib.rs` also gets an `#![allow(unused_variables, unused_mut)]`, with a
//! comment saying why: a `todo!()` body leaves its parameters unused.
//!
//! The workspace is written to `target/exercises/` with a zip of it,
//! `target/exercises/wsse-exercises.zip`; `cargo xtask book` puts the same zip
//! next to the book, which links to it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::process::{cargo, run_teed, workspace_root};
use crate::test::{StepResult, TestCounts, parse_test_result_line};

/// One exercise: its module in `crates/exercises/src`, its page in
/// `book/src/exercises/`, its title and the minutes it is planned for.
pub struct Exercise {
    pub module: &'static str,
    pub page: &'static str,
    pub title: &'static str,
    pub minutes: u32,
}

/// Every exercise, in the book's order. The course outline's schedules are
/// computed from the minutes, and a test holds each page to them.
pub const EXERCISES: &[Exercise] = &[
    Exercise {
        module: "accept_key",
        page: "accept-key.md",
        title: "Sec-WebSocket-Accept",
        minutes: 15,
    },
    Exercise {
        module: "frame_header",
        page: "frame-header.md",
        title: "Parse a frame header",
        minutes: 30,
    },
    Exercise {
        module: "unmask",
        page: "unmask.md",
        title: "Unmask a payload",
        minutes: 20,
    },
    Exercise {
        module: "sse_encode",
        page: "sse-encode.md",
        title: "Encode an SSE event",
        minutes: 15,
    },
    Exercise {
        module: "sse_parse",
        page: "sse-parse.md",
        title: "The SSE line parser",
        minutes: 40,
    },
    Exercise {
        module: "reconnect",
        page: "reconnect.md",
        title: "Reconnect and resume",
        minutes: 45,
    },
    Exercise {
        module: "heartbeat",
        page: "heartbeat.md",
        title: "A heartbeat for an echo server",
        minutes: 30,
    },
    Exercise {
        module: "capstone",
        page: "capstone.md",
        title: "Capstone: a fifth server",
        minutes: 240,
    },
];

/// What to do with the solution regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Solutions out: the learner's starting point.
    Starter,
    /// Solutions kept (the `STARTER:` lines dropped): proves the generated
    /// workspace itself builds and passes.
    WithSolutions,
}

/// The exercise crate's folder.
pub fn source_dir() -> PathBuf {
    workspace_root().join("crates/exercises")
}

/// Where `cargo xtask exercises` writes the starter workspace.
pub fn default_output_dir() -> PathBuf {
    workspace_root().join("target/exercises")
}

/// The zip's file name, and the folder every file in it sits under.
pub const ZIP_NAME: &str = "wsse-exercises.zip";
const ZIP_ROOT: &str = "wsse-exercises";

pub fn run(with_solutions: bool, out: Option<PathBuf>) -> ExitCode {
    let out = out.unwrap_or_else(default_output_dir);
    let variant = if with_solutions {
        Variant::WithSolutions
    } else {
        Variant::Starter
    };
    let zip = out.join(ZIP_NAME);
    match generate(&out, variant).and_then(|()| write_zip(&out, &zip)) {
        Ok(()) => {
            println!("exercises: wrote {}", out.display());
            println!("exercises: wrote {}", zip.display());
            println!(
                "exercises: cd {} && cargo test   # fails until you solve them",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("exercises: {error}");
            ExitCode::FAILURE
        }
    }
}

// ANCHOR: strip_solutions
/// The text of one source file with every solution region replaced (or, for
/// [`Variant::WithSolutions`], kept), and every `ANCHOR` line removed.
///
/// # Errors
///
/// A region that is never closed, or a `STARTER:` line outside a region's end.
pub fn transform(text: &str, variant: Variant) -> Result<String, String> {
    let mut out = String::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(name) = trimmed.strip_prefix("// ANCHOR: ") {
            let name = name.trim();
            let replaced = name.starts_with("solution") || name.starts_with("hidden");
            if !replaced {
                continue;
            }
            let end = format!("// ANCHOR_END: {name}");
            let mut body = String::new();
            loop {
                let Some((_, inner)) = lines.next() else {
                    return Err(format!(
                        "line {}: `// ANCHOR: {name}` is never closed",
                        number + 1
                    ));
                };
                if inner.trim() == end {
                    break;
                }
                if !inner.trim_start().starts_with("// ANCHOR") {
                    body.push_str(inner);
                    body.push('\n');
                }
            }
            let mut starter = String::new();
            while let Some((_, next)) = lines.peek() {
                let Some(code) = next.trim_start().strip_prefix("// STARTER:") else {
                    break;
                };
                let next_indent = &next[..next.len() - next.trim_start().len()];
                starter.push_str(&format!("{next_indent}{}\n", code.trim_start()));
                lines.next();
            }
            match variant {
                Variant::WithSolutions => out.push_str(&body),
                Variant::Starter if !starter.is_empty() => out.push_str(&starter),
                Variant::Starter if name.starts_with("hidden") => {
                    out.push_str(&format!("{indent}// TODO: yours to write.\n"));
                }
                Variant::Starter => out.push_str(&format!("{indent}todo!()\n")),
            }
        } else if trimmed.starts_with("// ANCHOR_END: ") {
            continue;
        } else if trimmed.starts_with("// STARTER:") {
            return Err(format!(
                "line {}: a `// STARTER:` line must follow an `ANCHOR_END: solution...` line",
                number + 1
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}
// ANCHOR_END: strip_solutions

/// Writes the workspace into `out`: a `Cargo.toml` of its own, the repository's
/// `Cargo.lock` (the versions the solutions were tested with), a README, and the
/// exercise crate in `out/exercises`, its sources transformed for `variant`.
///
/// # Errors
///
/// A file that cannot be read or written, or a malformed region.
pub fn generate(out: &Path, variant: Variant) -> Result<(), String> {
    let crate_out = out.join("exercises");
    if crate_out.exists() {
        std::fs::remove_dir_all(&crate_out)
            .map_err(|error| format!("{}: {error}", crate_out.display()))?;
    }
    let source = source_dir();
    for file in source_files(&source)? {
        let relative = file.strip_prefix(&source).expect("under the source folder");
        let text = std::fs::read_to_string(&file)
            .map_err(|error| format!("{}: {error}", file.display()))?;
        let mut text = if file.extension().is_some_and(|extension| extension == "rs") {
            transform(&text, variant).map_err(|error| format!("{}: {error}", file.display()))?
        } else {
            text
        };
        if variant == Variant::Starter && relative == Path::new("src/lib.rs") {
            text = quiet_starter_lib(&text);
        }
        write(&crate_out.join(relative), text.as_bytes())?;
    }
    write(&out.join("Cargo.toml"), WORKSPACE_MANIFEST.as_bytes())?;
    write(&out.join("README.md"), README.as_bytes())?;
    write(&out.join(".gitignore"), b"/target\n")?;
    let lock = workspace_root().join("Cargo.lock");
    if let Ok(lock) = std::fs::read(&lock) {
        write(&out.join("Cargo.lock"), &lock)?;
    }
    Ok(())
}

/// What the starter's `src/lib.rs` gets after its documentation. A `todo!()`
/// body uses none of its function's parameters, so without this the starter
/// would greet the learner with a warning per parameter (and one per `mut`
/// parameter). The solutions are built without it, so their lints stay on.
const STARTER_ALLOW: &str = "\
// Starter only: each `todo!()` leaves its function's parameters unused (and a
// `mut` on a parameter unneeded) until you write the body, and Rust would warn
// about every one of them. This line silences those two warnings for the whole
// crate. Delete it once your solutions are written, to get the warnings back
// for variables you really forgot to use.
#![allow(unused_variables, unused_mut)]
";

/// `text` (a crate root) with [`STARTER_ALLOW`] after its leading `//!` lines,
/// where inner attributes may go.
pub fn quiet_starter_lib(text: &str) -> String {
    let docs: usize = text
        .split_inclusive('\n')
        .take_while(|line| line.starts_with("//!"))
        .map(str::len)
        .sum();
    let (docs, rest) = text.split_at(docs);
    let separator = if docs.is_empty() { "" } else { "\n" };
    format!("{docs}{separator}{STARTER_ALLOW}{rest}")
}

const WORKSPACE_MANIFEST: &str = "\
[workspace]
members = [\"exercises\"]
resolver = \"3\"
";

const README: &str = "\
# Exercises: WebSocket and Server-Sent Events side by side

One module per exercise in `exercises/src/`. Each has the signature and the
documentation to start from, a `todo!()` where your code goes, and the tests
that tell you when it is right. The book's exercise pages say what to read
first, how long each one takes, and hide a few hints. `exercises/src/lib.rs`
turns off the unused-variable warnings the `todo!()`s would cause: delete that
line when you are done.

    cargo test                          # every exercise: they fail until solved
    cargo test accept_key               # one exercise (the module's name)
    cargo bench --bench unmask          # exercise 3: bytewise against wordwise

Order: accept_key, frame_header, unmask, sse_encode, sse_parse, reconnect,
heartbeat. The capstone (a fifth server) is done in the book's repository,
where `cargo xtask conformance` tests it.
";

/// Every file of the exercise crate that the starter needs.
fn source_files(source: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = vec![source.join("Cargo.toml")];
    let mut pending = vec![source.join("src"), source.join("benches")];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(&directory)
            .map_err(|error| format!("{}: {error}", directory.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("{}: {error}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|error| format!("{}: {error}", path.display()))
}

/// Zips the workspace in `directory` (not its `target/`, nor zips) into `zip`,
/// every file under a `wsse-exercises/` folder.
///
/// # Errors
///
/// A file that cannot be read or written.
pub fn write_zip(directory: &Path, zip: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|error| format!("{}: {error}", folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    pending.push(path);
                }
            } else if path.extension().is_none_or(|extension| extension != "zip") {
                files.push(path);
            }
        }
    }
    files.sort();

    let temporary = zip.with_extension("zip.partial");
    let file = std::fs::File::create(&temporary)
        .map_err(|error| format!("{}: {error}", temporary.display()))?;
    let mut writer = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for path in &files {
        let relative = path.strip_prefix(directory).expect("under the folder");
        let name = format!(
            "{ZIP_ROOT}/{}",
            relative.to_string_lossy().replace('\\', "/")
        );
        let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
        writer
            .start_file(name, options)
            .and_then(|()| writer.write_all(&bytes).map_err(Into::into))
            .map_err(|error| format!("{}: {error}", zip.display()))?;
    }
    writer
        .finish()
        .map_err(|error| format!("{}: {error}", zip.display()))?;
    std::fs::rename(&temporary, zip).map_err(|error| format!("{}: {error}", zip.display()))
}

/// A session of a course: a title, the chapters to read, the exercises.
pub struct Session {
    pub title: &'static str,
    pub read: &'static [(&'static str, &'static str)],
    pub exercises: &'static [&'static str],
}

const HANDSHAKE: (&str, &str) = ("The handshake", "../websocket/handshake.md");
const FRAMES: (&str, &str) = ("Frames", "../websocket/frames.md");
const HEARTBEATS: (&str, &str) = ("Heartbeats", "../websocket/heartbeats.md");
const SSE_FORMAT: (&str, &str) = ("The event-stream format", "../sse/format.md");
const PROTOCOL: (&str, &str) = ("The protocol", "../app/protocol.md");
const RESUMING: (&str, &str) = ("Reconnecting and resuming", "../app/resuming.md");
const FOUR_WAYS: (&str, &str) = ("One app, four servers", "../app/four-ways.md");
const WEBSOCKET: (&str, &str) = ("WebSocket: what it is", "../websocket/index.md");
const CLOSING: (&str, &str) = ("Connection states and closing", "../websocket/closing.md");
const AUTOBAHN: (&str, &str) = ("Autobahn\\|Testsuite", "../websocket/autobahn.md");
const SSE: (&str, &str) = ("Server-Sent Events: what it is", "../sse/index.md");
const EVENTSOURCE: (&str, &str) = ("The EventSource API", "../sse/eventsource.md");
const PROXIES: (&str, &str) = ("Keep-alive and proxies", "../sse/proxies.md");
const CHOOSING: (&str, &str) = ("WebSocket or SSE?", "../choosing/index.md");
const MEASURED: (&str, &str) = ("Measured", "../choosing/measured.md");
const PRODUCTION: (&str, &str) = ("In production", "../choosing/production.md");

/// The one-day course.
pub const ONE_DAY: &[Session] = &[
    Session {
        title: "Morning: WebSocket on the wire",
        read: &[HANDSHAKE, FRAMES],
        exercises: &["accept_key", "frame_header", "unmask"],
    },
    Session {
        title: "Afternoon: SSE, heartbeats, resuming",
        read: &[SSE_FORMAT, HEARTBEATS, RESUMING],
        exercises: &["sse_encode", "sse_parse", "heartbeat", "reconnect"],
    },
    Session {
        title: "Afterwards, on your own",
        read: &[PROTOCOL, FOUR_WAYS],
        exercises: &["capstone"],
    },
];

/// The three-day course.
pub const THREE_DAYS: &[Session] = &[
    Session {
        title: "Day 1: WebSocket",
        read: &[WEBSOCKET, HANDSHAKE, FRAMES, HEARTBEATS, CLOSING, AUTOBAHN],
        exercises: &["accept_key", "frame_header", "unmask", "heartbeat"],
    },
    Session {
        title: "Day 2: Server-Sent Events and the app",
        read: &[SSE, SSE_FORMAT, EVENTSOURCE, PROXIES, PROTOCOL, RESUMING],
        exercises: &["sse_encode", "sse_parse", "reconnect"],
    },
    Session {
        title: "Day 3: the capstone, and choosing",
        read: &[FOUR_WAYS, CHOOSING, MEASURED, PRODUCTION],
        exercises: &["capstone"],
    },
];

fn exercise(module: &str) -> &'static Exercise {
    EXERCISES
        .iter()
        .find(|exercise| exercise.module == module)
        .unwrap_or_else(|| panic!("no exercise {module}"))
}

/// How fast the schedules assume a chapter is read, in words per minute: a careful
/// pace for technical prose read with the code open next to it.
pub const READING_WORDS_PER_MINUTE: usize = 150;

/// The minutes a chapter takes to read: its prose words (code blocks and
/// `{{#include}}` lines left out; the listings are read with the exercise) at
/// [`READING_WORDS_PER_MINUTE`], rounded up to five minutes.
pub fn reading_minutes(markdown: &str) -> u32 {
    let mut in_code = false;
    let mut words = 0;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || line.trim_start().starts_with("{{#include") {
            continue;
        }
        words += line.split_whitespace().count();
    }
    let minutes = words.div_ceil(READING_WORDS_PER_MINUTE).max(1);
    u32::try_from(minutes.div_ceil(5) * 5).unwrap_or(u32::MAX)
}

/// The reading minutes of a chapter linked from the exercise pages (`../websocket/frames.md`).
fn chapter_reading_minutes(link: &str) -> u32 {
    let path = workspace_root()
        .join("book/src")
        .join(link.trim_start_matches("../"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    reading_minutes(&text)
}

/// The course outline's schedule tables, as Markdown: a table per course, a
/// row per session, the reading and exercise minutes added up.
pub fn schedule_markdown() -> String {
    let mut out = String::from(
        "<!-- Written by `cargo xtask book` from xtask/src/exercises.rs: do not edit. -->\n",
    );
    for (title, sessions) in [("One day", ONE_DAY), ("Three days", THREE_DAYS)] {
        let exercise_total: u32 = sessions
            .iter()
            .flat_map(|session| session.exercises)
            .map(|module| exercise(module).minutes)
            .sum();
        let reading_total: u32 = sessions
            .iter()
            .flat_map(|session| session.read)
            .map(|(_, path)| chapter_reading_minutes(path))
            .sum();
        out.push_str(&format!(
            "\n### {title}\n\nExercises: {} in all; reading: {}.\n\n",
            hours_and_minutes(exercise_total),
            hours_and_minutes(reading_total)
        ));
        out.push_str(
            "| Session | Read first | Reading | Exercises | Exercise time |\n|---|---|---|---|---|\n",
        );
        for session in sessions {
            let read: Vec<String> = session
                .read
                .iter()
                .map(|(name, path)| format!("[{name}]({path})"))
                .collect();
            let reading: u32 = session
                .read
                .iter()
                .map(|(_, path)| chapter_reading_minutes(path))
                .sum();
            let exercises: Vec<String> = session
                .exercises
                .iter()
                .map(|module| {
                    let exercise = exercise(module);
                    format!(
                        "[{}]({}) ({})",
                        exercise.title, exercise.page, exercise.minutes
                    )
                })
                .collect();
            let minutes: u32 = session
                .exercises
                .iter()
                .map(|module| exercise(module).minutes)
                .sum();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                session.title,
                read.join(", "),
                hours_and_minutes(reading),
                exercises.join(", "),
                hours_and_minutes(minutes)
            ));
        }
    }
    out.push_str(&format!(
        "\nReading times count each chapter's prose at {READING_WORDS_PER_MINUTE} words a minute, \
         rounded up to five minutes; code listings are read with the exercise.\n"
    ));
    out
}

fn hours_and_minutes(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, minutes) => format!("{hours} h {minutes} min"),
    }
}

/// The lines between `// ANCHOR: NAME` and `// ANCHOR_END: NAME` in `text`.
pub fn region(text: &str, name: &str) -> Option<String> {
    let start = format!("// ANCHOR: {name}");
    let end = format!("// ANCHOR_END: {name}");
    let mut lines = text.lines().skip_while(|line| line.trim() != start);
    lines.next()?;
    let mut out = String::new();
    for line in lines {
        if line.trim() == end {
            return Some(out);
        }
        out.push_str(line);
        out.push('\n');
    }
    None
}

/// For the book: each exercise's `exercise` region as the starter shows it
/// (`book/src/generated/exercises/MODULE.rs`), and the schedule tables
/// (`book/src/generated/course-schedule.md`). Files are only rewritten when they change.
pub fn write_book_files(generated: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut files = vec![(generated.join("course-schedule.md"), schedule_markdown())];
    for exercise in EXERCISES
        .iter()
        .filter(|exercise| exercise.module != "capstone")
    {
        let path = source_dir().join(format!("src/{}.rs", exercise.module));
        let starter = std::fs::read_to_string(&path)
            .map_err(|error| error.to_string())
            .and_then(|text| {
                region(&text, "exercise").ok_or_else(|| "no `exercise` region".to_owned())
            })
            .and_then(|region| transform(&region, Variant::Starter));
        match starter {
            Ok(starter) => files.push((
                generated.join(format!("exercises/{}.rs", exercise.module)),
                starter,
            )),
            Err(error) => problems.push(format!("{}: {error}", path.display())),
        }
    }
    for (path, text) in files {
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == text);
        if !unchanged && let Err(error) = write(&path, text.as_bytes()) {
            problems.push(error);
        }
    }
    problems
}

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

    const SOURCE: &str = "\
// ANCHOR: exercise
pub fn f(x: u32) -> u32 {
    // ANCHOR: solution
    x + 1
    // ANCHOR_END: solution
}

pub struct S {
    // ANCHOR: hidden_state
    a: u8,
    // ANCHOR_END: hidden_state
}

pub fn g() {
    // ANCHOR: solution_g
    work();
    // ANCHOR_END: solution_g
    // STARTER: plain();
}
// ANCHOR_END: exercise
";

    #[test]
    fn the_starter_has_todo_a_todo_comment_and_the_starter_lines() {
        let starter = transform(SOURCE, Variant::Starter).unwrap();
        assert_eq!(
            starter,
            "pub fn f(x: u32) -> u32 {\n    todo!()\n}\n\npub struct S {\n    \
             // TODO: yours to write.\n}\n\npub fn g() {\n    plain();\n}\n"
        );
    }

    #[test]
    fn with_solutions_only_the_markers_go() {
        let solved = transform(SOURCE, Variant::WithSolutions).unwrap();
        assert_eq!(
            solved,
            "pub fn f(x: u32) -> u32 {\n    x + 1\n}\n\npub struct S {\n    a: u8,\n}\n\n\
             pub fn g() {\n    work();\n}\n"
        );
    }

    #[test]
    fn an_unclosed_region_or_a_stray_starter_line_is_an_error() {
        let unclosed = transform("fn f() {\n// ANCHOR: solution\n1\n}\n", Variant::Starter);
        assert!(unclosed.unwrap_err().contains("never closed"));
        let stray = transform("// STARTER: x\n", Variant::Starter);
        assert!(stray.unwrap_err().contains("must follow"));
    }

    #[test]
    fn the_starter_lib_allows_unused_parameters_after_its_documentation() {
        let quiet = quiet_starter_lib("//! Docs.\n//! More.\n\npub mod a;\n");
        assert_eq!(
            quiet,
            format!("//! Docs.\n//! More.\n\n{STARTER_ALLOW}\npub mod a;\n")
        );
        assert_eq!(
            quiet_starter_lib("pub mod a;\n"),
            format!("{STARTER_ALLOW}pub mod a;\n")
        );
        let lib = std::fs::read_to_string(source_dir().join("src/lib.rs")).unwrap();
        let quiet = quiet_starter_lib(&transform(&lib, Variant::Starter).unwrap());
        let allow = quiet
            .find("#![allow(unused_variables, unused_mut)]")
            .unwrap();
        assert!(allow < quiet.find("pub mod").unwrap(), "{quiet}");
        assert!(
            !lib.contains("#![allow(unused"),
            "the solutions keep the lints"
        );
    }

    #[test]
    fn every_exercise_module_has_a_solution_and_tests() {
        for exercise in EXERCISES
            .iter()
            .filter(|exercise| exercise.module != "capstone")
        {
            let path = source_dir().join(format!("src/{}.rs", exercise.module));
            let text = std::fs::read_to_string(&path).unwrap();
            for marker in [
                "// ANCHOR: exercise",
                "// ANCHOR: solution",
                "// ANCHOR: tests",
            ] {
                assert!(text.contains(marker), "{}: no {marker}", path.display());
            }
            let starter = transform(&text, Variant::Starter).unwrap();
            assert!(!starter.contains("ANCHOR"), "{}", path.display());
        }
    }

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

    #[test]
    fn the_schedules_add_up_the_minutes() {
        let text = schedule_markdown();
        // The one-day course: 65 in the morning, 130 in the afternoon, 240 after.
        assert!(text.contains("| 1 h 5 min |"), "{text}");
        assert!(text.contains("| 2 h 10 min |"), "{text}");
        assert!(
            text.contains("Exercises: 7 h 15 min in all; reading: "),
            "{text}"
        );
        for exercise in EXERCISES {
            assert_eq!(
                text.matches(&format!("]({})", exercise.page)).count(),
                2,
                "{} once per course",
                exercise.module
            );
        }
    }

    #[test]
    fn reading_time_counts_prose_not_code_and_rounds_up_to_five_minutes() {
        let prose = "word ".repeat(READING_WORDS_PER_MINUTE * 6);
        let code = format!("```rust\n{}\n```\n", "let x = 1; ".repeat(5000));
        let include = "{{#include ../a.rs:anchor}} ".repeat(5000);
        assert_eq!(reading_minutes(&format!("{prose}\n{code}{include}\n")), 10);
        assert_eq!(reading_minutes("one word"), 5);
        assert_eq!(
            reading_minutes(&"word ".repeat(READING_WORDS_PER_MINUTE * 5)),
            5
        );
    }

    #[test]
    fn a_region_is_the_lines_between_its_markers() {
        let text = "a\n  // ANCHOR: x\nb\n  // ANCHOR_END: x\nc\n";
        assert_eq!(region(text, "x").as_deref(), Some("b\n"));
        assert_eq!(region(text, "y"), None);
    }

    #[test]
    fn each_exercise_page_states_its_minutes() {
        for exercise in EXERCISES {
            let path = workspace_root()
                .join("book/src/exercises")
                .join(exercise.page);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let stated = format!("**Time:** about {} minutes", exercise.minutes);
            assert!(
                text.contains(&stated),
                "{} lacks `{stated}`",
                path.display()
            );
        }
    }
}
