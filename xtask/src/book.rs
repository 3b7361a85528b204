//! `cargo xtask book`: build the book with mdBook as a library, and refuse to
//! call it built when anything is off.
//!
//! mdBook logs a missing include file and goes on, and includes nothing at all
//! for a missing anchor, without a word. So this task checks every
//! `{{#include}}` itself before building, counts every warning mdBook logs, and
//! checks every internal link and fragment of the built HTML afterwards.
//!
//! Before building, it writes what the chapters show from the code: the demos'
//! output and the facts (`crate::facts`), the numbers and versions the prose
//! states, under `book/src/generated/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::process::workspace_root;

/// The book's sources and where mdBook writes it (`build-dir` in book.toml).
pub fn book_dir() -> PathBuf {
    workspace_root().join("book")
}

pub fn output_dir() -> PathBuf {
    workspace_root().join("target/book")
}

pub fn run() -> ExitCode {
    let problems = build();
    if problems.is_empty() {
        println!("book: built into {}", output_dir().display());
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("book: {problem}");
        }
        eprintln!("book: {} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

/// Builds the book; returns every problem found (empty means a clean build).
pub fn build() -> Vec<String> {
    install_warning_counter();
    let warnings_before = LOGGED_WARNINGS.load(Ordering::SeqCst);
    let mut problems = generate_demo_outputs();
    problems.extend(crate::facts::write(&book_dir().join("src/generated/facts")));
    problems.extend(crate::exercises::write_book_files(
        &book_dir().join("src/generated"),
    ));
    problems.extend(check_includes(&book_dir().join("src")));
    if let Err(error) = mdbook_driver::MDBook::load(book_dir()).and_then(|book| book.build()) {
        problems.push(format!("mdBook failed: {error:#}"));
    }
    // After the build, which empties the output folder: the starter the
    // exercise pages link to.
    problems.extend(write_starter_zip());
    let logged = LOGGED_WARNINGS.load(Ordering::SeqCst) - warnings_before;
    if logged > 0 {
        problems.push(format!(
            "mdBook logged {logged} warning(s) or error(s), shown above"
        ));
    }
    problems.extend(check_links(&output_dir()));
    problems
}

// ANCHOR: demo_outputs
/// The demos whose output the chapters show, each with the file it is written to
/// under `book/src/generated/`. Their output is deterministic (the RFC's key, a
/// fixed masking key), so the files only change when the code does.
const DEMO_OUTPUTS: &[(&str, &[&str])] = &[
    (
        "handshake-demo.txt",
        &["handshake", "dGhlIHNhbXBsZSBub25jZQ=="],
    ),
    (
        "frames-hello.txt",
        &["frames", "Hello", "--mask-key", "37fa213d"],
    ),
    (
        "frames-300.txt",
        &["frames", "--size", "300", "--mask-key", "37fa213d"],
    ),
    ("frame-overhead.md", &["frames", "--table"]),
    ("event-stream-demo.txt", &["event_stream"]),
    ("wire-cost.md", &["wire_cost"]),
];
// ANCHOR_END: demo_outputs

/// Runs each demo of [`DEMO_OUTPUTS`] and writes what it printed.
fn generate_demo_outputs() -> Vec<String> {
    let directory = book_dir().join("src/generated");
    if let Err(error) = std::fs::create_dir_all(&directory) {
        return vec![format!("{}: {error}", directory.display())];
    }
    let mut problems = Vec::new();
    for (file, demo) in DEMO_OUTPUTS {
        let (example, arguments) = demo.split_first().expect("a demo has a name");
        let mut command = crate::process::cargo(["run", "--quiet", "--example", example, "--"]);
        command.args(arguments);
        match command.output() {
            Ok(output) if output.status.success() => {
                let path = directory.join(file);
                let unchanged = std::fs::read(&path).is_ok_and(|old| old == output.stdout);
                if !unchanged && let Err(error) = std::fs::write(&path, &output.stdout) {
                    problems.push(format!("{}: {error}", path.display()));
                }
            }
            Ok(output) => problems.push(format!(
                "the {example} demo failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )),
            Err(error) => problems.push(format!("running the {example} demo: {error}")),
        }
    }
    problems
}

/// Writes the starter workspace (`cargo xtask exercises`) and puts its zip in
/// the built book, where the exercise pages link to it.
fn write_starter_zip() -> Vec<String> {
    use crate::exercises::starter::{Variant, ZIP_NAME, default_output_dir, generate, write_zip};
    let out = default_output_dir();
    match generate(&out, Variant::Starter)
        .and_then(|()| write_zip(&out, &output_dir().join(ZIP_NAME)))
    {
        Ok(()) => Vec::new(),
        Err(error) => vec![format!("the starter zip: {error}")],
    }
}

/// Warnings and errors logged (by mdBook) since the process started.
static LOGGED_WARNINGS: AtomicUsize = AtomicUsize::new(0);

/// A `tracing` layer that counts warnings and errors into [`LOGGED_WARNINGS`].
struct CountWarnings;

impl<S: Subscriber> Layer<S> for CountWarnings {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            LOGGED_WARNINGS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Prints mdBook's log to stderr as usual, and counts its warnings. Installing
/// twice (the test task may build the book after another task did) is harmless.
fn install_warning_counter() {
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(CountWarnings)
        .try_init();
}

/// Every `{{#include FILE}}`, `{{#include FILE:ANCHOR}}` and `{{#rustdoc_include ...}}`
/// in the Markdown under `source`: the file must exist and a named anchor must have
/// both its `ANCHOR:` and `ANCHOR_END:` lines.
pub fn check_includes(source: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for page in files_with_extension(source, "md") {
        let Ok(text) = std::fs::read_to_string(&page) else {
            problems.push(format!("{}: cannot read", page.display()));
            continue;
        };
        for target in include_targets(&text) {
            if let Err(problem) = check_include(&page, &target) {
                problems.push(format!(
                    "{}: {{{{#include {target}}}}}: {problem}",
                    page.display()
                ));
            }
        }
    }
    problems
}

/// The `FILE[:ANCHOR or lines]` part of each include directive in `text`.
pub fn include_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#") {
        rest = &rest[start + 3..];
        let Some(end) = rest.find("}}") else { break };
        let directive = &rest[..end];
        rest = &rest[end + 2..];
        let mut words = directive.split_whitespace();
        if let (Some("include" | "rustdoc_include"), Some(target)) = (words.next(), words.next()) {
            targets.push(target.to_owned());
        }
    }
    targets
}

fn check_include(page: &Path, target: &str) -> Result<(), String> {
    let (file, selector) = match target.split_once(':') {
        Some((file, selector)) => (file, Some(selector)),
        None => (target, None),
    };
    let path = page.parent().unwrap_or(Path::new(".")).join(file);
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    match selector {
        // Line ranges (`:10:20`, `:5:`) are mdBook's business; anchors are ours.
        Some(anchor) if !anchor.starts_with(|c: char| c.is_ascii_digit()) => {
            for marker in [format!("ANCHOR: {anchor}"), format!("ANCHOR_END: {anchor}")] {
                if !text
                    .lines()
                    .any(|line| line.trim_start().ends_with(&marker))
                {
                    return Err(format!("no `{marker}` line in {}", path.display()));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Every relative `href` of the built HTML must name a file that exists, and a
/// `#fragment` must name an `id` in that file.
pub fn check_links(output: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for page in files_with_extension(output, "html") {
        let Ok(html) = std::fs::read_to_string(&page) else {
            continue;
        };
        for link in attribute_values(&html, "href") {
            if link.contains("://") || link.starts_with("mailto:") || link.starts_with("data:") {
                continue;
            }
            let (path, fragment) = match link.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap_or(output).join(path)
            };
            let relative = page
                .strip_prefix(output)
                .unwrap_or(&page)
                .display()
                .to_string();
            if !target.exists() {
                problems.push(format!("{relative}: broken link `{link}`"));
                continue;
            }
            if let Some(fragment) = fragment.filter(|fragment| !fragment.is_empty()) {
                let target_html = std::fs::read_to_string(&target).unwrap_or_default();
                if !attribute_values(&target_html, "id")
                    .iter()
                    .any(|id| id == fragment)
                {
                    let shown = if path.is_empty() { "this page" } else { path };
                    problems.push(format!("{relative}: no `#{fragment}` in `{shown}`"));
                }
            }
        }
    }
    problems
}

/// The values of `name="..."` attributes in `html` (mdBook always quotes with `"`).
pub fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let pattern = format!(" {name}=\"");
    html.match_indices(&pattern)
        .filter_map(|(index, _)| {
            let start = index + pattern.len();
            html[start..]
                .find('"')
                .map(|end| html[start..start + end].to_owned())
        })
        .collect()
}

fn files_with_extension(root: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|found| found == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_include_targets() {
        let text = "a {{#include ../x.rs:demo}} b {{#rustdoc_include y.rs}} {{#title T}}";
        assert_eq!(include_targets(text), ["../x.rs:demo", "y.rs"]);
    }

    #[test]
    fn a_missing_anchor_is_a_problem() {
        let directory = std::env::temp_dir().join(format!("xtask-book-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(
            directory.join("code.rs"),
            "// ANCHOR: here\nfn f() {}\n// ANCHOR_END: here\n",
        )
        .unwrap();
        std::fs::write(
            directory.join("page.md"),
            "{{#include code.rs:here}}\n{{#include code.rs:gone}}\n{{#include missing.rs}}\n",
        )
        .unwrap();
        let problems = check_includes(&directory);
        std::fs::remove_dir_all(&directory).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("ANCHOR: gone"), "{problems:?}");
        assert!(problems[1].contains("missing.rs"), "{problems:?}");
    }

    #[test]
    fn reads_attribute_values() {
        let html = r#"<a href="a.html#x">a</a><h2 id="x">x</h2><a href="https://e.org">e</a>"#;
        assert_eq!(
            attribute_values(html, "href"),
            ["a.html#x", "https://e.org"]
        );
        assert_eq!(attribute_values(html, "id"), ["x"]);
    }
}
