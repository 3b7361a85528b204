//! `cargo xtask bench`: run the benchmarks and write their tables.
//!
//! Two halves: the wire crate's codec (ours next to tungstenite, criterion), in this
//! file, whose table goes between two markers in `crates/wire/README.md`, and the
//! servers' load scenarios, whose tables and charts go into the book:
//! [`scenarios`] starts the servers and the load generator and collects the results,
//! [`tables`] renders them (with [`charts`] for the SVGs, [`against_peers`] for the
//! ratios to the article's stacks and [`side_by_side`] for the "Choosing" chapter's
//! measured rows). Every table is stamped with the machine, date
//! and commit, so no number is typed by hand.

mod against_peers;
mod charts;
mod cluster;
mod compression;
mod scenarios;
mod side_by_side;
mod tables;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::process::{cargo_program, describe, measured_on, run_streamed, workspace_root};

const README: &str = "crates/wire/README.md";
const START_MARKER: &str = "<!-- bench:start (written by `cargo xtask bench`) -->";
const END_MARKER: &str = "<!-- bench:end -->";
const SIZES: [&str; 3] = ["20 B", "1 KiB", "16 KiB"];

/// One row group of the table: a criterion group, the function measured as
/// "ours", and the one it is compared with.
struct Comparison {
    group: &'static str,
    ours: &'static str,
    theirs: &'static str,
}

const COMPARISONS: &[Comparison] = &[
    Comparison {
        group: "decode header",
        ours: "ours",
        theirs: "tungstenite",
    },
    Comparison {
        group: "decode masked frame to message",
        ours: "ours, borrowed",
        theirs: "tungstenite",
    },
    Comparison {
        group: "decode masked frame to message",
        ours: "ours, owned",
        theirs: "tungstenite",
    },
    Comparison {
        group: "encode server frame",
        ours: "ours",
        theirs: "tungstenite",
    },
    Comparison {
        group: "unmask",
        ours: "word at a time",
        theirs: "byte at a time",
    },
];

pub fn run(quick: bool, only: &[String], with_peers: bool) -> ExitCode {
    if let Some(unknown) = only
        .iter()
        .find(|name| *name != "codec" && !scenarios::SCENARIOS.contains(&name.as_str()))
    {
        eprintln!(
            "xtask: unknown benchmark {unknown:?}; choose from codec, {}",
            scenarios::SCENARIOS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    // The quick run leaves the codec out unless asked for: criterion needs minutes
    // for its 48 measurements, and the README's table deserves a full run.
    let codec = (only.is_empty() && !quick) || only.iter().any(|name| name == "codec");
    if codec && run_codec(quick) == ExitCode::FAILURE {
        return ExitCode::FAILURE;
    }
    let servers: Vec<String> = only
        .iter()
        .filter(|name| *name != "codec")
        .cloned()
        .collect();
    if !only.is_empty() && servers.is_empty() {
        return ExitCode::SUCCESS;
    }
    match scenarios::run(&scenarios::Plan::new(quick), &servers, with_peers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_codec(quick: bool) -> ExitCode {
    // Pin the benchmark to one core so that runs on this 2-core machine compare.
    let mut command = if Path::new("/usr/bin/taskset").exists() {
        let mut command = Command::new("taskset");
        command.args(["-c", "1"]).arg(cargo_program());
        command
    } else {
        Command::new(cargo_program())
    };
    command.current_dir(workspace_root());
    command.args(["bench", "-p", "wsse-wire", "--bench", "codec", "--"]);
    if quick {
        command.args(["--warm-up-time", "0.2", "--measurement-time", "0.4"]);
    }
    match run_streamed(&mut command) {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("xtask: `{}` failed ({status})", describe(&command));
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("xtask: could not run `{}`: {error}", describe(&command));
            return ExitCode::FAILURE;
        }
    }
    let table = match codec_table() {
        Ok(table) => table,
        Err(error) => {
            eprintln!("xtask: reading criterion's results: {error}");
            return ExitCode::FAILURE;
        }
    };
    let section = format!("{}\n{}", measured_by(), table);
    println!("\n{section}");
    match write_between_markers(&workspace_root().join(README), &section) {
        Ok(()) => {
            println!("wrote the table to {README}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("xtask: writing {README}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Criterion's median estimate for one benchmark, in nanoseconds.
fn median_nanoseconds(group: &str, function: &str, size: &str) -> Result<f64, String> {
    let path = workspace_root()
        .join("target/criterion")
        .join(group)
        .join(function)
        .join(size)
        .join("new/estimates.json");
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let estimates: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    estimates["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("{}: no median", path.display()))
}

fn codec_table() -> Result<String, String> {
    let mut table = String::from(
        "| benchmark | size | ours | compared with | their time | ours / theirs |\n\
         |---|---:|---:|---|---:|---:|\n",
    );
    for comparison in COMPARISONS {
        for size in SIZES {
            let ours = median_nanoseconds(comparison.group, comparison.ours, size)?;
            let theirs = median_nanoseconds(comparison.group, comparison.theirs, size)?;
            writeln!(
                table,
                "| {} ({}) | {size} | {} | {} | {} | {:.2} |",
                comparison.group,
                comparison.ours,
                format_duration(ours),
                comparison.theirs,
                format_duration(theirs),
                ours / theirs
            )
            .expect("writing to a String");
        }
    }
    Ok(table)
}

pub fn format_duration(nanoseconds: f64) -> String {
    if nanoseconds >= 1000.0 {
        format!("{:.2} µs", nanoseconds / 1000.0)
    } else {
        format!("{nanoseconds:.1} ns")
    }
}

/// Which machine, when, and which commit produced the numbers.
fn measured_by() -> String {
    format!(
        "Measured by `cargo xtask bench` {} (benchmark pinned to one core). Medians of \
         criterion's samples; \"ours / theirs\" below 1 means ours is faster.\n",
        measured_on()
    )
}

/// Replaces what stands between the two markers in `path` with `section`.
fn write_between_markers(path: &Path, section: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let replaced = replace_between_markers(&text, section)?;
    std::fs::write(path, replaced).map_err(|error| error.to_string())
}

pub fn replace_between_markers(text: &str, section: &str) -> Result<String, String> {
    let start = text
        .find(START_MARKER)
        .ok_or_else(|| format!("no `{START_MARKER}` line"))?
        + START_MARKER.len();
    let end = text[start..]
        .find(END_MARKER)
        .ok_or_else(|| format!("no `{END_MARKER}` line after the start marker"))?
        + start;
    Ok(format!(
        "{}\n{}\n{}",
        &text[..start],
        section.trim_end(),
        &text[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_marked_section() {
        let text = format!("# Title\n{START_MARKER}\nold table\n{END_MARKER}\nafter\n");
        let replaced = replace_between_markers(&text, "new table\n").unwrap();
        assert_eq!(
            replaced,
            format!("# Title\n{START_MARKER}\nnew table\n{END_MARKER}\nafter\n")
        );
        assert!(replace_between_markers("no markers", "x").is_err());
    }

    #[test]
    fn durations_switch_units_at_a_microsecond() {
        assert_eq!(format_duration(56.04), "56.0 ns");
        assert_eq!(format_duration(1164.1), "1.16 µs");
    }
}
