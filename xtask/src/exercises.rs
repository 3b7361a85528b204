//! `cargo xtask exercises`: the learner's starter workspace, made from
//! `crates/exercises` by taking the solutions out, and what the book and
//! `cargo xtask test` need of the exercises. One module per job:
//!
//! - [`starter`]: the starter transform (each solution becomes `todo!()`), the
//!   workspace written around it, and its zip;
//! - [`schedule`]: the course schedule the book's course outline shows;
//! - [`check`]: the `exercises` step of `cargo xtask test`.
//!
//! The workspace is written to `target/exercises/` with a zip of it,
//! `target/exercises/wsse-exercises.zip`; `cargo xtask book` puts the same zip
//! next to the book, which links to it.

pub mod check;
pub mod schedule;
pub mod starter;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use check::{check, test_step};
use starter::{
    Variant, default_output_dir, generate, region, source_dir, transform, write, write_zip,
};

/// One exercise: its module in `crates/exercises/src`, its page in
/// `book/src/exercises/` and its title. The minutes it is planned for are on
/// its page, in the `**Time:** about N minutes` line the reader sees
/// ([`schedule::page_minutes`]).
pub struct Exercise {
    pub module: &'static str,
    pub page: &'static str,
    pub title: &'static str,
}

/// Every exercise, in the book's order. The course outline's schedules are
/// computed from the minutes their pages state.
pub const EXERCISES: &[Exercise] = &[
    Exercise {
        module: "accept_key",
        page: "accept-key.md",
        title: "Sec-WebSocket-Accept",
    },
    Exercise {
        module: "frame_header",
        page: "frame-header.md",
        title: "Parse a frame header",
    },
    Exercise {
        module: "unmask",
        page: "unmask.md",
        title: "Unmask a payload",
    },
    Exercise {
        module: "sse_encode",
        page: "sse-encode.md",
        title: "Encode an SSE event",
    },
    Exercise {
        module: "sse_parse",
        page: "sse-parse.md",
        title: "The SSE line parser",
    },
    Exercise {
        module: "reconnect",
        page: "reconnect.md",
        title: "Reconnect and resume",
    },
    Exercise {
        module: "heartbeat",
        page: "heartbeat.md",
        title: "A heartbeat for an echo server",
    },
    Exercise {
        module: "capstone",
        page: "capstone.md",
        title: "Capstone: a fifth server",
    },
];

pub fn run(with_solutions: bool, out: Option<PathBuf>) -> ExitCode {
    let out = out.unwrap_or_else(default_output_dir);
    let variant = if with_solutions {
        Variant::WithSolutions
    } else {
        Variant::Starter
    };
    let zip = out.join(starter::ZIP_NAME);
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

/// For the book: each exercise's `exercise` region as the starter shows it
/// (`book/src/generated/exercises/MODULE.rs`), and the schedule tables
/// (`book/src/generated/course-schedule.md`). Files are only rewritten when they change.
pub fn write_book_files(generated: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    match schedule::schedule_markdown() {
        Ok(schedule) => files.push((generated.join("course-schedule.md"), schedule)),
        Err(error) => problems.push(error),
    }
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
