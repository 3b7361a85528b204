//! The course schedule: the book's one-day and three-day courses, their
//! sessions' chapters and exercises, and the reading and exercise minutes added
//! up into `book/src/generated/course-schedule.md`. Each exercise's minutes are
//! read from its page's `**Time:** about N minutes` line, so the page and the
//! schedule cannot disagree.

use super::{EXERCISES, Exercise};
use crate::process::workspace_root;

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

/// How an exercise page states its minutes, near its top:
/// `**Time:** about 15 minutes. **Read first:** ...`.
const TIME_PREFIX: &str = "**Time:** about ";

/// The minutes an exercise page states in its `**Time:** about N minutes` line.
///
/// # Errors
///
/// The page has no such line, or its number is not a whole number of minutes.
pub fn page_minutes(markdown: &str) -> Result<u32, String> {
    let stated = markdown
        .lines()
        .find_map(|line| line.strip_prefix(TIME_PREFIX))
        .ok_or_else(|| format!("no `{TIME_PREFIX}N minutes` line"))?;
    let digits = stated
        .find(|character: char| !character.is_ascii_digit())
        .map_or(stated, |end| &stated[..end]);
    let minutes = stated[digits.len()..]
        .starts_with(" minutes")
        .then(|| digits.parse().ok())
        .flatten();
    minutes.ok_or_else(|| format!("`{TIME_PREFIX}{stated}` does not read `{TIME_PREFIX}N minutes`"))
}

/// The minutes `exercise`'s page states.
fn exercise_minutes(exercise: &Exercise) -> Result<u32, String> {
    let path = workspace_root()
        .join("book/src/exercises")
        .join(exercise.page);
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    page_minutes(&text).map_err(|error| format!("{}: {error}", path.display()))
}

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
///
/// # Errors
///
/// An exercise page that does not state its minutes.
pub fn schedule_markdown() -> Result<String, String> {
    let planned: Vec<u32> = EXERCISES
        .iter()
        .map(exercise_minutes)
        .collect::<Result<_, _>>()?;
    let minutes_of = |module: &str| {
        let index = EXERCISES
            .iter()
            .position(|exercise| exercise.module == module)
            .unwrap_or_else(|| panic!("no exercise {module}"));
        planned[index]
    };
    let mut out = String::from(
        "<!-- Written by `cargo xtask book` from xtask/src/exercises/schedule.rs: do not edit. -->\n",
    );
    for (title, sessions) in [("One day", ONE_DAY), ("Three days", THREE_DAYS)] {
        let exercise_total: u32 = sessions
            .iter()
            .flat_map(|session| session.exercises)
            .map(|module| minutes_of(module))
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
                        exercise.title,
                        exercise.page,
                        minutes_of(module)
                    )
                })
                .collect();
            let minutes: u32 = session
                .exercises
                .iter()
                .map(|module| minutes_of(module))
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
    Ok(out)
}

fn hours_and_minutes(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, minutes) => format!("{hours} h {minutes} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedules_add_up_the_minutes() {
        let text = schedule_markdown().unwrap();
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
    fn a_page_states_its_minutes_and_a_page_without_them_is_an_error() {
        assert_eq!(
            page_minutes("# Exercise 1\n\n**Time:** about 15 minutes. **Read first:** x\n"),
            Ok(15)
        );
        assert!(
            page_minutes("# Exercise 1\n\nNo time stated.\n")
                .unwrap_err()
                .contains("no `**Time:** about N minutes` line")
        );
        assert!(page_minutes("**Time:** about fifteen minutes.\n").is_err());
        assert!(page_minutes("**Time:** about 15 hours.\n").is_err());
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
    fn each_exercise_page_states_its_minutes() {
        for exercise in EXERCISES {
            let minutes = exercise_minutes(exercise).unwrap();
            assert!(minutes > 0, "{}: {minutes} minutes", exercise.page);
        }
    }
}
