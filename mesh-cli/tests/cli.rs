//! The `mesh-sync` program used as a person or a script would: real processes on
//! 127.0.0.1, commands on standard input or `--exec`, answers read from their output.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-sync");
/// Generous: two cores may be busy building or testing other things.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `mesh-sync` whose output is collected line by line.
struct NodeProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Standard error lines seen so far, for failure messages.
    stderr_seen: Vec<String>,
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl NodeProcess {
    /// Starts a node on 127.0.0.1 and a free port, with `extra` arguments.
    fn start(node_id: &str, extra: &[&str]) -> NodeProcess {
        let mut child = Command::new(BIN)
            .args([node_id, "--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mesh-sync starts");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        NodeProcess {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// The port from the startup line, `... listening on 127.0.0.1:PORT ...`.
    fn port(&mut self) -> u16 {
        let deadline = Instant::now() + PATIENCE;
        while let Some(line) = self.next_stderr(deadline) {
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return digits.parse().expect("a port number after `listening on`");
            }
        }
        panic!("no `listening on` line; stderr: {:?}", self.stderr_seen);
    }

    fn next_stderr(&mut self, deadline: Instant) -> Option<String> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = self.stderr.recv_timeout(wait).ok()?;
        self.stderr_seen.push(line.clone());
        Some(line)
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("node reads its stdin");
        stdin.flush().unwrap();
    }

    /// The next line of standard output.
    fn answer(&mut self) -> String {
        self.stdout
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no answer; stderr: {:?}", self.drain_stderr()))
    }

    /// Sends `line` until the answer is `want`, or panics after `PATIENCE`.
    fn poll_until(&mut self, line: &str, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            self.send(line);
            last = self.answer();
            if last == want {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("`{line}` kept answering `{last}`, never `{want}`");
    }

    fn drain_stderr(&mut self) -> Vec<String> {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
        self.stderr_seen.clone()
    }

    /// Closes stdin (end of input) and waits for the process to exit.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        self.stdin.take();
        let status = wait_with_timeout(&mut self.child);
        // The reader thread may still be handing over the last lines.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.next_stderr(deadline).is_some() {}
        (status, self.stderr_seen.clone())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("waitable child") {
            return status;
        }
        assert!(Instant::now() < deadline, "mesh-sync did not exit");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `mesh-sync` to completion with `args` and `input` on stdin.
fn run(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mesh-sync starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let status = wait_with_timeout(&mut child);
    let mut output = child.wait_with_output().expect("output collected");
    output.status = status;
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_write_through_one_node_is_read_through_another() {
    let mut alpha = NodeProcess::start(
        "alpha",
        &["--sync-interval", "1", "--heartbeat-interval", "0.5"],
    );
    let port = alpha.port().to_string();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut beta = NodeProcess::start(
        "beta",
        &[
            "--bootstrap",
            &bootstrap,
            "--sync-interval",
            "1",
            "--heartbeat-interval",
            "0.5",
        ],
    );
    beta.port();

    alpha.send(r#"set greeting {"text": "hello", "n": 3}"#);
    assert_eq!(alpha.answer(), "ok");
    beta.poll_until("get greeting", r#"{"n":3,"text":"hello"}"#);

    // And back the other way, a delete this time.
    beta.send("delete greeting");
    assert_eq!(beta.answer(), "deleted");
    alpha.poll_until("get greeting", "(not found)");

    alpha.send("quit");
    let (status, _) = alpha.finish();
    assert!(status.success(), "alpha exited with {status}");
    let (status, stderr) = beta.finish();
    assert!(status.success(), "beta exited with {status}");
    assert!(
        stderr.iter().any(|l| l.contains("[peer] alpha joined")),
        "beta never announced alpha: {stderr:?}"
    );
}

#[test]
fn values_are_json_when_they_parse_and_strings_otherwise() {
    let out = run(
        &["solo", "--host", "127.0.0.1", "--quiet"],
        "set n 42\nset s \"42\"\nset w hello world\nset m [1, {\"a\": null}]\nlist\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok\nok\nok\nok\nm = [1,{\"a\":null}]\nn = 42\ns = \"42\"\nw = \"hello world\"\n"
    );
}

#[test]
fn json_nested_past_the_depth_limit_is_an_error_not_a_string() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let input = format!(
        "set over {}\nset far {}\nset at {}\nlist\n",
        nested(mesh_core::value::MAX_DEPTH + 1),
        nested(20_000),
        nested(mesh_core::value::MAX_DEPTH),
    );
    let out = run(&["solo", "--host", "127.0.0.1", "--quiet"], &input);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr
            .matches("arrays and objects are nested more than 100 levels deep")
            .count(),
        2,
        "{stderr}"
    );
    assert_eq!(
        text(&out.stdout),
        format!("ok\nat = {}\n", nested(mesh_core::value::MAX_DEPTH))
    );
}

#[test]
fn exec_runs_its_commands_in_order_then_leaves() {
    let out = run(
        &[
            "solo",
            "--host",
            "127.0.0.1",
            "--exec",
            "set a 1.5",
            "--exec",
            "get a",
            "--exec",
            "get b",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok\n1.5\n(not found)\n");
}

#[test]
fn json_mode_answers_every_command_with_one_json_line() {
    let out = run(
        &["solo", "--host", "127.0.0.1", "--json", "--quiet"],
        "set n 42\nget n\nget missing\nfrobnicate\ndelete n\nlist\n",
    );
    // One command failed, so a script learns of it from the exit status.
    assert_eq!(out.status.code(), Some(1));
    let answers: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}` is not JSON: {e}")))
        .collect();
    assert_eq!(answers.len(), 6, "{answers:?}");
    assert_eq!(answers[0]["ok"], true);
    assert_eq!(answers[1]["value"], 42);
    assert_eq!(answers[2]["found"], false);
    assert!(answers[3]["error"]
        .as_str()
        .unwrap()
        .contains("unknown command `frobnicate`"));
    assert_eq!(answers[4]["deleted"], true);
    assert_eq!(answers[5], serde_json::json!({}));
}

#[test]
fn bad_commands_are_explained_and_fail_a_script() {
    let out = run(
        &["solo", "--host", "127.0.0.1", "--quiet"],
        "frobnicate\nset onlykey\nget a b\nset a 1\nget a\n",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: unknown command `frobnicate` (type `help`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing VALUE (usage: set KEY VALUE)"),
        "{stderr}"
    );
    assert!(stderr.contains("unexpected `b` after the key"), "{stderr}");
    // The commands after the bad ones still ran.
    assert_eq!(text(&out.stdout), "ok\n1\n");

    let out = run(
        &["solo", "--host", "127.0.0.1", "--exec", "sleep never"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a number of seconds"));
}

#[test]
fn bad_arguments_exit_with_status_2_and_say_why() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "required arguments were not provided"),
        (
            &["n1", "--port", "http"],
            "invalid value 'http' for '--port <PORT>'",
        ),
        (&["n1", "--port", "70000"], "--port"),
        (&["n1", "--loss", "1.5"], "must be between 0 and 1"),
        (&["n1", "--bootstrap", "nohost"], "expected HOST:PORT"),
        (
            &["n1", "--bootstrap", "no such host:5000"],
            "neither an IP address nor a valid host name",
        ),
        (
            &["n1", "--advertise", "0.0.0.0:5000"],
            "invalid --advertise",
        ),
        (
            &["n1", "--sync-interval", "0"],
            "positive number of seconds",
        ),
        (
            &["n1", "--heartbeat-interval", "20"],
            "invalid --peer-timeout: must be at least --heartbeat-interval",
        ),
        (
            &["n1", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
    ];
    for (args, needle) in cases {
        let mut full = args.to_vec();
        if !full.is_empty() {
            full.extend(["--host", "127.0.0.1"]);
        }
        let out = run(&full, "");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected `{needle}` in: {stderr}"
        );
    }
}

#[test]
fn a_port_in_use_is_reported_plainly() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(&["n1", "--host", "127.0.0.1", "--port", &port], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind UDP socket to 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_a_serving_node_cleanly() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let mut node = NodeProcess::start("daemon", &["--serve", "--exec", "set up true"]);
    node.port();
    assert_eq!(node.answer(), "ok");
    let pid = Pid::from_raw(i32::try_from(node.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let (status, stderr) = node.finish();
    assert!(status.success(), "exited with {status}");
    assert!(
        stderr.iter().any(|l| l.contains("node daemon stopped")),
        "{stderr:?}"
    );
}

#[test]
fn help_explains_options_commands_and_exit_status() {
    let out = run(&["--help"], "");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--bootstrap <HOST:PORT>",
        "--sync-interval <SECS>",
        "--loss <P>",
        "--exec <COMMAND>",
        "--keyring <FILE>",
        "mesh-sync keygen",
        "set KEY VALUE",
        "listening on HOST:PORT",
        "Exit status",
    ] {
        assert!(help.contains(needle), "`{needle}` missing from --help");
    }
}

/// A keyring file with `mode` in a fresh directory under the target dir.
fn keyring_file(name: &str, contents: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keyrings");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn keygen_prints_a_base64_key() {
    let out = run(&["keygen"], "");
    assert!(out.status.success());
    let key = text(&out.stdout);
    assert_eq!(key.trim().len(), 44, "{key}");
    assert!(mesh_core::Key::from_base64(key.trim()).is_ok());
    assert_ne!(text(&run(&["keygen"], "").stdout), key, "keys are random");
    assert_eq!(run(&["keygen", "extra"], "").status.code(), Some(2));
}

#[test]
fn nodes_sharing_a_keyring_file_talk_and_loose_files_are_refused() {
    let key = text(&run(&["keygen"], "").stdout);
    let contents = format!("# the mesh's key\n\n{key}");
    let loose = keyring_file("loose", &contents, 0o644);
    let out = run(
        &[
            "n1",
            "--host",
            "127.0.0.1",
            "--keyring",
            loose.to_str().unwrap(),
        ],
        "",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");

    let private = keyring_file("private", &contents, 0o600);
    let keyring = private.to_str().unwrap();
    let mut alpha = NodeProcess::start(
        "alpha",
        &["--keyring", keyring, "--heartbeat-interval", "0.5"],
    );
    let bootstrap = format!("127.0.0.1:{}", alpha.port());
    let mut beta = NodeProcess::start(
        "beta",
        &[
            "--keyring",
            keyring,
            "--bootstrap",
            &bootstrap,
            "--heartbeat-interval",
            "0.5",
        ],
    );
    beta.port();
    alpha.send("set sealed 1");
    assert_eq!(alpha.answer(), "ok");
    beta.poll_until("get sealed", "1");
    alpha.send("quit");
    beta.send("quit");
    assert!(alpha.finish().0.success());
    assert!(beta.finish().0.success());
}

#[test]
fn watch_prints_the_changes_under_its_prefix_before_the_write_answers() {
    let out = run(
        &[
            "watcher",
            "--host",
            "127.0.0.1",
            "--quiet",
            "--exec",
            "watch sensor/",
            "--exec",
            "set sensor/temp 21",
            "--exec",
            "set door open",
            "--exec",
            "delete sensor/temp",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A write answers once its watches have run, so the order is fixed.
    assert_eq!(
        text(&out.stdout),
        "watching sensor/\n\
         [watch sensor/] sensor/temp = 21 (set)\n\
         ok\n\
         ok\n\
         [watch sensor/] sensor/temp deleted (delete)\n\
         deleted\n"
    );
}

#[test]
fn durability_without_a_data_dir_is_refused_not_ignored() {
    let output = run(
        &[
            "n1",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--durability",
            "sync",
        ],
        "",
    );
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--data-dir"),
        "names what is missing: {stderr}"
    );
}
