//! Every scenario runs at its smallest size and prints its tables: keeps the benchmark
//! program from rotting. Figures are not checked here; they are measured, not asserted.

use std::process::Command;

#[test]
fn every_scenario_runs_in_smoke_mode_and_prints_its_tables() {
    let json = std::env::temp_dir().join(format!("mesh-bench-smoke-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_mesh-bench"))
        .args(["--smoke", "--json"])
        .arg(&json)
        .arg("all")
        .output()
        .expect("run mesh-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "mesh-bench --smoke failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for title in [
        "### Propagation latency",
        "### Partition healed to converged",
        "### Restart catch-up",
        "### Join: a new node catches up",
        "### Sustained writes on one node",
        "### Local write latency while the node catches up",
        "### Cost of a keyring",
        "### Bytes and datagrams per replicated write",
        "### Scaling with nodes",
        "### Idle node, 5-node mesh",
        "### Resident memory per million keys",
        "### mesh-sync vs chitchat",
        "### Observing a node: scrape and dashboard page",
        "### Durable writes on one node",
        "### Reload of a stored state",
        "### Restarted node catches up by delta",
        "### Writes through the broadcast tree",
    ] {
        assert!(stdout.contains(title), "no table {title:?} in:\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report written"))
            .expect("valid JSON");
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["smoke"], true);
    assert!(report["tables"].as_array().is_some_and(|t| t.len() >= 11));
}
