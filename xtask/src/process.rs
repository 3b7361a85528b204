//! Running child commands: from the workspace root, with their output shown
//! live, optionally handing each stdout line to a parser as well.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The workspace root: the parent of this crate's directory. Taken at compile
/// time so the tasks work from whatever directory `cargo xtask` is typed in.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ lives inside the workspace root")
        .to_path_buf()
}

/// A `cargo` command run from the workspace root. Uses the cargo that started
/// this xtask (cargo sets `CARGO` for `cargo run`), so a `+toolchain` choice or
/// a non-default cargo carries over to the child commands.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut command = Command::new(cargo_program());
    command
        .args(args.into_iter().map(Into::into))
        .current_dir(workspace_root());
    command
}

/// The cargo that started this xtask (cargo sets `CARGO` for `cargo run`), so a
/// `+toolchain` choice or a non-default cargo carries over to child commands.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// The command as a person would type it, for headers and error messages:
/// `cargo test --workspace` rather than the toolchain's full path to cargo.
pub fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_stem()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let mut words = vec![program];
    words.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// Print a header, then run the command with stdout and stderr going straight
/// to the terminal.
pub fn run_streamed(command: &mut Command) -> io::Result<ExitStatus> {
    print_header(command);
    command.status()
}

/// Print a header, then run the command, copying each stdout line to our
/// stdout as soon as it arrives and also passing it to `on_line` (a tee).
/// Stderr is inherited untouched, so compiler progress shows as usual.
pub fn run_teed(command: &mut Command, on_line: impl FnMut(&str)) -> io::Result<ExitStatus> {
    print_header(command);
    tee(command, &mut io::stdout(), on_line)
}

/// The tee itself, writing to any `out` so the unit test can capture it.
fn tee(
    command: &mut Command,
    out: &mut impl Write,
    mut on_line: impl FnMut(&str),
) -> io::Result<ExitStatus> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let child_stdout = child.stdout.take().expect("stdout was piped");
    let mut reader = BufReader::new(child_stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bytes, not `lines()`: a test printing invalid UTF-8 must not stop the tee.
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        // Flush per line so the output is live, not held back in a buffer.
        out.write_all(&line)?;
        out.flush()?;
        on_line(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
    }
    child.wait()
}

fn print_header(command: &Command) {
    println!("\n==> {}", describe(command));
}

/// What a command printed on stdout, trimmed, or "unknown" if it could not run:
/// for the stamps on generated tables (date, commit, compiler).
pub fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// When, from which commit (and whether with uncommitted changes), with which
/// compiler and on which machine: "on DATE, commit C, rustc X, on MACHINE", for the
/// line above every table of measured numbers.
pub fn measured_on() -> String {
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"]);
    let dirty = if dirty.is_empty() || dirty == "unknown" {
        ""
    } else {
        " with uncommitted changes"
    };
    let rustc = command_output("rustc", &["--version"]);
    format!(
        "on {date}, commit {commit}{dirty}, {rustc}, on {}",
        machine()
    )
}

/// The machine a measurement ran on, for the stamps on generated tables:
/// the CPU model and how many cores this process may use.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    format!("{cpu} ({cores} cores)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_the_command_as_typed() {
        let command = cargo(["fmt", "--all", "--", "--check"]);
        assert_eq!(describe(&command), "cargo fmt --all -- --check");
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[cfg(unix)]
    #[test]
    fn tee_copies_and_hands_over_every_line_and_the_exit_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "printf 'one\\ntwo\\r\\nthree'; exit 3"]);
        let mut copied = Vec::new();
        let mut seen = Vec::new();
        let status = tee(&mut command, &mut copied, |line| seen.push(line.to_owned())).unwrap();
        assert_eq!(copied, b"one\ntwo\r\nthree");
        assert_eq!(seen, ["one", "two", "three"]);
        assert_eq!(status.code(), Some(3));
    }
}
