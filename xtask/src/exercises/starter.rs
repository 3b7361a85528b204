//! The starter transform: the exercise crate with its solutions taken out.
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

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::process::workspace_root;

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

/// Writes `bytes` to `path`, making its folder first.
pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exercises::EXERCISES;

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
    fn a_region_is_the_lines_between_its_markers() {
        let text = "a\n  // ANCHOR: x\nb\n  // ANCHOR_END: x\nc\n";
        assert_eq!(region(text, "x").as_deref(), Some("b\n"));
        assert_eq!(region(text, "y"), None);
    }
}
