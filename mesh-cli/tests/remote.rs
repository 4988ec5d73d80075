//! The HTTP listener of `mesh-sync --metrics`, seen from outside the process: `mesh-sync
//! status ADDR` and `mesh-sync peers ADDR`, `/metrics`, tokens, and the safety rules.
//! Real processes on 127.0.0.1 with ephemeral ports.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-sync");
/// Generous: two cores may be busy building or testing other things.
const PATIENCE: Duration = Duration::from_secs(20);

/// A `mesh-sync --serve` node with its HTTP listener on an ephemeral port.
struct Served {
    child: Child,
    stderr: Receiver<String>,
    udp_port: u16,
    http: String,
}

impl Served {
    fn start(node_id: &str, extra: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args([node_id, "--host", "127.0.0.1", "--port", "0", "--serve"])
            .args(["--metrics", "127.0.0.1:0", "--heartbeat-interval", "0.2"])
            .args(["--peer-timeout", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mesh-sync starts");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Served {
            child,
            stderr,
            udp_port: 0,
            http: String::new(),
        };
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        while node.udp_port == 0 || node.http.is_empty() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = node
                .stderr
                .recv_timeout(wait)
                .unwrap_or_else(|_| panic!("no startup lines; stderr: {seen:?}"));
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                node.udp_port = rest
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap();
            }
            if let Some(rest) = line.split("dashboard on http://").nth(1) {
                node.http = rest.split('/').next().unwrap().to_owned();
            }
            seen.push(line);
        }
        node
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mesh_sync(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mesh-sync runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
fn get(addr: &str, target: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("listener accepts");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().expect("a status code");
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (code, body)
}

/// Polls `mesh-sync peers ADDR --json` until `node_id` is alive there.
fn wait_alive(http: &str, node_id: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = mesh_sync(&["peers", http, "--json"]);
        assert!(out.status.success(), "{out:?}");
        let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let alive = peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["node_id"] == node_id && p["state"] == "alive");
        if alive {
            return;
        }
        assert!(Instant::now() < deadline, "{node_id} never alive: {peers}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn status_and_peers_are_read_from_outside_the_process() {
    let a = Served::start("alpha", &[]);
    let b = Served::start(
        "beta",
        &["--bootstrap", &format!("127.0.0.1:{}", a.udp_port)],
    );
    wait_alive(&a.http, "beta");
    wait_alive(&b.http, "alpha");

    let peers = mesh_sync(&["peers", &a.http]);
    assert!(peers.status.success(), "{peers:?}");
    let table = stdout(&peers);
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().starts_with("NODE  ADDRESS"),
        "{table}"
    );
    let row = lines.next().expect("one peer row");
    assert!(
        row.starts_with("beta ") && row.contains(" alive "),
        "{table}"
    );
    // The largest datagram sent to the peer: the base size, as nothing bulk went.
    assert!(
        table.lines().next().unwrap().ends_with("  DATAGRAM"),
        "{table}"
    );
    assert!(row.ends_with("  1200 B"), "{table}");

    let status = mesh_sync(&["status", &b.http]);
    assert!(status.status.success(), "{status:?}");
    let table = stdout(&status);
    assert!(
        table.starts_with(&format!(
            "node        beta on port {} (running)",
            b.udp_port
        )),
        "{table}"
    );
    assert!(table.contains("peers       1 alive"), "{table}");

    let json = mesh_sync(&["status", &b.http, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["node_id"], "beta");
    assert_eq!(doc["port"], b.udp_port);
    assert!(doc["counters"]["datagrams_received"].as_u64().unwrap() > 0);
}

#[test]
fn metrics_are_served_in_the_text_format_with_the_node_label() {
    let a = Served::start("gamma", &[]);
    let (code, body) = get(&a.http, "/metrics", &[]);
    assert_eq!(code, 200);
    let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(samples.len() > 20, "{body}");
    for sample in samples {
        assert!(sample.contains(r#"{node="gamma""#), "{sample}");
        let value = sample.rsplit_once(' ').unwrap().1;
        assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{sample}");
    }
    assert_eq!(get(&a.http, "/nothing", &[]).0, 404);
    assert_eq!(get(&a.http, "/api/keys?limit=0", &[]).0, 400);
}

#[test]
fn a_token_guards_every_request() {
    let dir = std::env::temp_dir().join(format!("mesh-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "s3cret-token-0123456789\n").unwrap();
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&file, perms).unwrap();
    let path = file.to_str().unwrap();

    let a = Served::start("delta", &["--metrics-token", path]);
    for target in [
        "/metrics",
        "/api/status",
        "/api/peers",
        "/api/keys",
        "/api/propagation",
    ] {
        assert_eq!(get(&a.http, target, &[]).0, 401, "{target}");
    }
    // The page and its script hold no data: the browser loads them, then sends the token.
    assert_eq!(get(&a.http, "/", &[]).0, 200);
    assert_eq!(get(&a.http, "/dashboard.js", &[]).0, 200);
    assert_eq!(get(&a.http, "/nothing", &[]).0, 401);
    let wrong = get(&a.http, "/metrics", &["Authorization: Bearer wrong"]);
    assert_eq!(wrong.0, 401);
    let bearer = "Authorization: Bearer s3cret-token-0123456789";
    assert_eq!(get(&a.http, "/metrics", &[bearer]).0, 200);
    let page = get(&a.http, "/api/keys?token=s3cret-token-0123456789", &[]);
    assert_eq!(page.0, 200);
    assert!(page.1.contains("\"matched\":0"), "{}", page.1);

    let refused = mesh_sync(&["status", &a.http]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token"));
    let allowed = mesh_sync(&["status", &a.http, "--token", path]);
    assert!(allowed.status.success(), "{allowed:?}");
    assert!(stdout(&allowed).starts_with("node        delta"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listener_other_machines_can_reach_must_be_asked_for() {
    let out = mesh_sync(&[
        "n",
        "--port",
        "0",
        "--metrics",
        "0.0.0.0:0",
        "--exec",
        "quit",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-public"));

    let dir = std::env::temp_dir().join(format!("mesh-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys");
    let key = stdout(&mesh_sync(&["keygen"]));
    std::fs::write(&keys, key).unwrap();
    let mut perms = std::fs::metadata(&keys).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&keys, perms).unwrap();
    let out = mesh_sync(&[
        "n",
        "--port",
        "0",
        "--keyring",
        keys.to_str().unwrap(),
        "--metrics",
        "0.0.0.0:0",
        "--metrics-public",
        "--exec",
        "quit",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-token"));
    let _ = std::fs::remove_dir_all(&dir);
}
