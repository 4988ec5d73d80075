//! `mesh-sync --log-format json`: the node's log lines as JSON objects on standard error.
//! Real processes on 127.0.0.1 with ephemeral ports.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-sync");

#[test]
fn a_warning_is_logged_as_one_json_object() {
    // Two processes with one node id: each warns that the other claims its id.
    let mut first = Command::new(BIN)
        .args([
            "twin",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--serve",
            "--json",
        ])
        .args(["--log-format", "json", "--heartbeat-interval", "0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mesh-sync starts");
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    let startup: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let port = startup["port"]
        .as_u64()
        .expect("the startup line has the port");

    let second = Command::new(BIN)
        .args(["twin", "--host", "127.0.0.1", "--port", "0"])
        .args(["--bootstrap", &format!("127.0.0.1:{port}")])
        .args(["--heartbeat-interval", "0.1", "--exec", "sleep 1"])
        .stdin(Stdio::null())
        .output()
        .expect("mesh-sync runs");
    assert!(second.status.success(), "{second:?}");
    let text_log = String::from_utf8_lossy(&second.stderr);
    assert!(
        text_log
            .lines()
            .any(|l| l.contains(" WARN  mesh_core::engine: twin: heard from")),
        "{text_log}"
    );

    let _ = first.kill();
    let _ = first.wait();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let warning = rest
        .iter()
        .find(|l| l.contains("claiming our own node id"))
        .unwrap_or_else(|| panic!("no warning in {rest:?}"));
    let value: serde_json::Value = serde_json::from_str(warning).expect("a JSON object");
    assert_eq!(value["level"], "WARN");
    assert_eq!(value["target"], "mesh_core::engine");
    assert!(value["ts"].as_str().unwrap().ends_with('Z'), "{value}");
    assert!(value["message"]
        .as_str()
        .unwrap()
        .starts_with("twin: heard from 127.0.0.1:"));
}
