//! mesh-bench: measures mesh-sync on real sockets (and in the simulator where only
//! protocol costs matter), and runs chitchat side by side. Prints Markdown tables;
//! `--json FILE` also writes them as JSON.
//!
//! ```text
//! mesh-bench [--smoke] [--json FILE] [--sizes N,N,...] [--rows NAME,...] [SCENARIO ...]
//! ```
//!
//! Scenarios: propagation, partition, restart, join, join-holders, throughput,
//! write-latency, keyed, cost, scale, members, idle, memory, compare, observe, durability,
//! origins, broadcast; `all` (the default) runs every one. `--smoke` runs each at a tiny
//! size.
//! `crosscheck` compares the byte counts with the kernel's; run it in a network namespace
//! of its own (scripts/kernel-crosscheck.sh).

mod broadcast;
mod child;
mod compare;
mod cost;
mod crosscheck;
mod disruption;
mod durability;
mod keyed;
mod mesh;
mod observe;
mod origins;
mod procfs;
mod propagation;
mod report;
mod resources;
mod throughput;
mod write_latency;

use std::process::ExitCode;
use std::time::Instant;

use report::{Machine, Report, Table};

const SCENARIOS: &[&str] = &[
    "propagation",
    "partition",
    "restart",
    "join",
    "join-holders",
    "throughput",
    "write-latency",
    "keyed",
    "cost",
    "scale",
    "members",
    "idle",
    "memory",
    "compare",
    "observe",
    "durability",
    "origins",
    "broadcast",
];

fn usage() -> String {
    format!(
        "usage: mesh-bench [--smoke] [--json FILE] [--sizes N,N,...] [--rows NAME,...] [--mesh-only] [SCENARIO ...]\n--sizes: the mesh sizes `scale` and `propagation` run\n--rows: the rows `compare` runs ({})\n--mesh-only: `compare` runs mesh-sync's side only\nscenarios: {} (default: all), crosscheck",
        compare::ROW_NAMES.join(","),
        SCENARIOS.join(" ")
    )
}

/// `5,20,1000` as node counts; `None` if any is not a number above 1.
fn parse_sizes(list: &str) -> Option<Vec<usize>> {
    list.split(',')
        .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 1))
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child-node") {
        child::serve(
            args.get(1).map_or("child", String::as_str),
            args.get(2).map_or("default", String::as_str),
        );
        return ExitCode::SUCCESS;
    }
    let mut smoke = false;
    let mut json = None;
    let mut sizes: Option<Vec<usize>> = None;
    let mut rows: Option<Vec<String>> = None;
    let mut mesh_only = false;
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--mesh-only" => mesh_only = true,
            "--json" => match it.next() {
                Some(path) => json = Some(path.clone()),
                None => {
                    eprintln!("--json needs a file\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--sizes" => match it.next().map(|list| parse_sizes(list)) {
                Some(Some(list)) => sizes = Some(list),
                _ => {
                    eprintln!("--sizes needs node counts, comma separated\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--rows" => {
                let list: Option<Vec<String>> = it
                    .next()
                    .map(|list| list.split(',').map(|r| r.trim().to_owned()).collect());
                match list {
                    Some(list)
                        if list
                            .iter()
                            .all(|r| compare::ROW_NAMES.contains(&r.as_str())) =>
                    {
                        rows = Some(list)
                    }
                    _ => {
                        eprintln!("--rows needs row names, comma separated\n{}", usage());
                        return ExitCode::from(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            // Not part of `all`: it is meant for a fresh network namespace.
            "crosscheck" => chosen.push("crosscheck".to_owned()),
            "all" => chosen.extend(SCENARIOS.iter().map(|s| (*s).to_owned())),
            s if SCENARIOS.contains(&s) => chosen.push(s.to_owned()),
            other => {
                eprintln!("unknown argument {other}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen.extend(SCENARIOS.iter().map(|s| (*s).to_owned()));
    }
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        smoke,
        machine: Machine::read(),
        tables: Vec::new(),
    };
    println!("<!-- {} -->", report.command);
    println!("Machine: {}\n", report.machine.describe());
    let mut timings = Table::new("Scenario wall-clock times", &["scenario", "seconds"]);
    for scenario in &chosen {
        let start = Instant::now();
        eprintln!(
            "mesh-bench: running {scenario}{}",
            if smoke { " (smoke)" } else { "" }
        );
        match scenario.as_str() {
            "propagation" => propagation::run(&mut report, smoke, sizes.as_deref()),
            "partition" | "restart" | "join" | "join-holders" => {
                disruption::run(&mut report, smoke, scenario)
            }
            "throughput" => throughput::run(&mut report, smoke),
            "write-latency" => write_latency::run(&mut report, smoke),
            "keyed" => keyed::run(&mut report, smoke),
            "cost" => cost::run(&mut report, smoke),
            "scale" => cost::run_scale(&mut report, smoke, sizes.as_deref()),
            "members" => cost::run_members(&mut report, smoke),
            "idle" | "memory" => resources::run(&mut report, smoke, scenario),
            "compare" => compare::run(&mut report, smoke, rows.as_deref(), mesh_only),
            "observe" => observe::run(&mut report, smoke),
            "durability" => durability::run(&mut report, smoke),
            "origins" => origins::run(&mut report, smoke),
            "broadcast" => broadcast::run(&mut report, smoke),
            "crosscheck" => crosscheck::run(&mut report),
            _ => unreachable!("scenario names are checked above"),
        }
        timings.row(vec![
            scenario.clone(),
            format!("{:.1}", start.elapsed().as_secs_f64()),
        ]);
    }
    report.add(timings);
    if let Some(path) = json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("cannot write {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
