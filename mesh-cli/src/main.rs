//! `mesh-sync`: run one mesh-sync node from a terminal or a script.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mesh_cli::args::{parse_advertise, parse_peer, parse_probability, parse_seconds, PeerAddr};
use mesh_cli::command::{self, Command, Format};
use mesh_cli::http::ListenOptions;
use mesh_cli::logging::LogFormat;
use mesh_cli::remote::{Query, RemoteArgs};
use mesh_core::{ChangeOrigin, Config, Error, Event, FaultConfig, Node};
use parking_lot::Mutex;

/// What `--help` prints after the options: the commands, then how to script the node.
fn after_help() -> String {
    let commands = command::command_list(
        "Commands (typed at the prompt, given with --exec, or one per line on standard input):",
    );
    format!("{commands}\n\n{SCRIPTING_HELP}")
}

const SCRIPTING_HELP: &str = "\
Output: results go to standard output, values always as JSON (\"42\" is a string, 42 an
integer); the startup line, peer and sync notices and errors go to standard error. The
startup line reads `listening on HOST:PORT`, so a script can find the port chosen by
--port 0.

Exit status: 0 on quit, end of input, Ctrl-C or SIGTERM; 1 if a command given with
--exec or on non-terminal standard input failed, or the node could not start; 2 for bad
arguments.

Keys: `mesh-sync keygen` prints a new random key (base64) and exits. With --keyring
FILE every datagram is sealed (encrypted and authenticated) with the file's first key
and accepted if it opens under any of its keys; the file holds one base64 key per line
(blank lines and # comments ignored) and must not be readable or writable by group or
others (chmod 600). Without --keyring the node talks plaintext: trusted networks only.

Watching a node: with --metrics ADDR:PORT the node serves Prometheus metrics at
/metrics and a live dashboard at /, on 127.0.0.1 unless --metrics-public (and, with
--keyring, --metrics-token FILE) allows another address. `mesh-sync status ADDR` and
`mesh-sync peers ADDR` print a running node's status and peers from that listener
(--json, --token FILE). So NODE_ID cannot be keygen, status or peers.

Examples:
  mesh-sync keygen > mesh.keys && chmod 600 mesh.keys
  mesh-sync node1 --port 5001 --keyring mesh.keys
  mesh-sync node2 --port 5002 --bootstrap 127.0.0.1:5001 --metrics 9100
  mesh-sync status 127.0.0.1:9100
  mesh-sync node5 --port 5005 --bootstrap 127.0.0.1:5001 --data-dir /var/lib/mesh-sync --serve
  mesh-sync node3 --port 0 --bootstrap localhost:5001 --exec 'wait temperature' --exec list
  mesh-sync node6 --host :: --port 5006 --peer [::1]:5001 --advertise [2001:db8::6]:5006
  echo 'set temperature 72.5' | mesh-sync node4 --bootstrap 127.0.0.1:5001";

/// Runs one node of a mesh-sync mesh: a replica of a key-value state that every node can
/// write and that converges on every node, over UDP, without a leader.
///
/// With a terminal, commands are read at a prompt with line editing and history. With
/// --exec, those commands run and the node leaves (unless --serve). Otherwise commands
/// are read one per line from standard input until it ends.
#[derive(Debug, Parser)]
#[command(name = "mesh-sync", version, after_help = after_help())]
struct Cli {
    /// This node's name in the mesh; every node needs its own.
    #[arg(value_name = "NODE_ID")]
    node_id: String,

    /// UDP port to listen on; 0 picks a free one (printed at startup).
    #[arg(short, long, default_value_t = 0)]
    port: u16,

    /// Address to listen on (0.0.0.0: every IPv4 interface; 127.0.0.1: this machine only;
    /// `::` every IPv6 interface and, where the system allows it, every IPv4 one too;
    /// ::1 this machine over IPv6).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    host: String,

    /// The address other nodes should use to reach this one, as HOST:PORT or
    /// [IPV6]:PORT, when it differs from the one listened on (behind a NAT port mapping,
    /// or --host 0.0.0.0 on a machine with several addresses). Port 0: the listening port.
    /// Peers still answer this node where its datagrams come from; the advertised
    /// address is what they pass on to others.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_advertise)]
    advertise: Option<SocketAddr>,

    /// A node to join through, as HOST:PORT or [IPV6]:PORT (repeatable). A host name is
    /// a DNS seed: resolved in the background, and again while it cannot be reached.
    /// Others are found by gossip.
    #[arg(short, long, visible_alias = "peer", value_name = "HOST:PORT", value_parser = parse_peer)]
    bootstrap: Vec<PeerAddr>,

    /// Name of the mesh; nodes only talk to nodes with the same name.
    #[arg(long, value_name = "NAME", default_value = "default")]
    cluster: String,

    /// Seconds between anti-entropy rounds, which repair whatever pushes missed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    sync_interval: Duration,

    /// Seconds between heartbeats to each peer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    heartbeat_interval: Duration,

    /// Seconds of silence before a peer is suspected (failed after twice this); at least
    /// the heartbeat interval.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_seconds)]
    peer_timeout: Duration,

    /// Most reachable peers a write is pushed to by its writer; in a larger mesh writes
    /// travel a broadcast tree, costing the writer a few datagrams instead of one per
    /// peer. 0 sends every write through the tree.
    #[arg(long, value_name = "N", default_value_t = 32)]
    push_fanout: usize,

    /// Seal every datagram with the keys in FILE: one base64 key per line, the first
    /// seals, all open. The file must be private to its owner (chmod 600).
    #[arg(long, value_name = "FILE")]
    keyring: Option<std::path::PathBuf>,

    /// Keep the node's state on disk in DIR (one node per directory): a restarted node
    /// reloads it, serves reads at once and catches up with its peers by delta.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// With --data-dir: "batched" commits writes in the background within 10 ms; "sync"
    /// acknowledges a write only once it is on disk.
    #[arg(long, value_name = "MODE", default_value = "batched", requires = "data_dir",
          value_parser = |s: &str| s.parse::<mesh_core::Durability>())]
    durability: mesh_core::Durability,

    /// Seconds a delete's tombstone is kept at most without every peer's confirmation,
    /// and a dropped one still remembered; keep it longer than any partition you expect.
    #[arg(long, value_name = "SECS", default_value = "86400", value_parser = parse_seconds)]
    tombstone_grace: Duration,

    /// Most dropped tombstones remembered until the tombstone grace, so that an older
    /// value from a node that missed the delete still loses to it (oldest forgotten
    /// first; about 200 bytes and the key each). 0 remembers none.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_collected_deletes: usize,

    /// Send every payload uncompressed, and tell peers not to compress to this node
    /// (compression of bulk data is on by default, and used only where it wins).
    #[arg(long)]
    no_compression: bool,

    /// Drop this fraction of outgoing datagrams on purpose (0.2 or 20%), to watch the
    /// mesh converge over a lossy network.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    loss: f64,

    /// Run this command after starting (repeatable, in order), then leave.
    #[arg(short = 'e', long = "exec", value_name = "COMMAND")]
    exec: Vec<String>,

    /// Read no commands: run until Ctrl-C or SIGTERM (after any --exec commands).
    /// For nodes started in the background.
    #[arg(long)]
    serve: bool,

    /// Print results, notices and errors as one JSON document per line.
    #[arg(long)]
    json: bool,

    /// Do not print notices about peers and changes received from them.
    #[arg(short, long)]
    quiet: bool,

    /// Serve Prometheus metrics (/metrics), the live dashboard (/) and the status that
    /// `mesh-sync status ADDR` reads over HTTP on ADDR:PORT (a bare PORT means
    /// 127.0.0.1:PORT; port 0 picks a free one, printed at startup).
    #[arg(long, value_name = "ADDR:PORT", value_parser = mesh_cli::http::parse_listen_addr)]
    metrics: Option<SocketAddr>,

    /// Allow --metrics on an address other machines can reach. The dashboard shows every
    /// key and value.
    #[arg(long, requires = "metrics")]
    metrics_public: bool,

    /// Require the token in FILE (one line, chmod 600) on every HTTP request, as
    /// `Authorization: Bearer TOKEN` or `?token=TOKEN`. Needed for a public --metrics
    /// on a mesh sealed with --keyring.
    #[arg(long, value_name = "FILE", requires = "metrics")]
    metrics_token: Option<std::path::PathBuf>,

    /// How the node's log lines are written on standard error: text, or one JSON object
    /// per line. Identical lines are written at most once per 10 s.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Least severe log lines written: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "warn", value_parser = mesh_cli::logging::parse_level)]
    log_level: log::LevelFilter,
}

impl Cli {
    fn config(&self) -> Config {
        let mut config = Config::new(self.node_id.clone(), self.port);
        config.host = self.host.clone();
        config.advertise_addr = self.advertise;
        config.cluster = self.cluster.clone();
        config.sync_interval = self.sync_interval;
        config.heartbeat_interval = self.heartbeat_interval;
        config.peer_timeout = self.peer_timeout;
        config.push_fanout = self.push_fanout;
        config.data_dir = self.data_dir.clone();
        config.durability = self.durability;
        config.tombstone_grace = self.tombstone_grace;
        config.max_collected_deletes = self.max_collected_deletes;
        config.compression = !self.no_compression;
        config
    }

    /// The HTTP listener asked for, checked against the safety rules.
    fn listen_options(&self) -> Result<Option<ListenOptions>, String> {
        let Some(addr) = self.metrics else {
            return Ok(None);
        };
        let token = match &self.metrics_token {
            Some(path) => Some(mesh_cli::http::read_token(path)?),
            None => None,
        };
        let options = ListenOptions {
            addr,
            public: self.metrics_public,
            token,
        };
        options.check(self.keyring.is_some())?;
        Ok(Some(options))
    }

    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            Format::Plain
        }
    }
}

/// Exit status for arguments the node refused.
const EXIT_USAGE: u8 = 2;
/// Longest wait at exit for peers to acknowledge writes still in flight.
const LINGER: Duration = Duration::from_millis(1500);

fn main() -> ExitCode {
    // `mesh-sync keygen` is the one subcommand; every other first argument is a NODE_ID.
    let mut argv = std::env::args().skip(1);
    match argv.next().as_deref() {
        Some("keygen") => return keygen(argv.next().as_deref()),
        Some("status") => return remote(Query::Status),
        Some("peers") => return remote(Query::Peers),
        _ => {}
    }
    let cli = Cli::parse();
    let format = cli.format();
    if let Err(message) = mesh_cli::logging::init(cli.log_format, cli.log_level) {
        report_error(format, &message);
    }
    let listen = match cli.listen_options() {
        Ok(listen) => listen,
        Err(message) => {
            report_error(format, &message);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let node = match build_node(&cli) {
        Ok(node) => Arc::new(node),
        Err((code, message)) => {
            report_error(format, &message);
            return ExitCode::from(code);
        }
    };

    let interactive = cli.exec.is_empty() && !cli.serve && std::io::stdin().is_terminal();
    let mut editor = if interactive {
        match rustyline::DefaultEditor::new() {
            Ok(editor) => Some(editor),
            Err(e) => {
                report_error(format, &format!("cannot set up line editing: {e}"));
                None
            }
        }
    } else {
        None
    };

    let notices = Arc::new(Notices::new(format));
    if let Some(editor) = editor.as_mut() {
        if let Ok(printer) = editor.create_external_printer() {
            *notices.printer.lock() = Some(Box::new(printer));
        }
    }
    if !cli.quiet {
        let notices = Arc::clone(&notices);
        node.set_event_handler(move |event| notices.event(event));
    }
    // Started only now, so that the handler sees the very first peer events.
    if let Err(e) = node.start() {
        report_error(format, &e.to_string());
        return ExitCode::FAILURE;
    }
    install_shutdown_handler(Arc::clone(&node), format, interactive);

    let addr = node.local_addr();
    notices.line(
        &format!(
            "mesh-sync: node {} listening on {addr} (cluster {:?})",
            cli.node_id, cli.cluster
        ),
        serde_json::json!({
            "event": "listening", "node_id": cli.node_id, "addr": addr.to_string(),
            "port": addr.port(), "cluster": cli.cluster,
        }),
    );
    if let Some(options) = &listen {
        match mesh_cli::http::serve(Arc::clone(&node), options) {
            Ok(http) => notices.line(
                &format!(
                    "mesh-sync: dashboard on http://{http}/, metrics on http://{http}/metrics"
                ),
                serde_json::json!({"event": "http", "addr": http.to_string()}),
            ),
            Err(message) => {
                report_error(format, &message);
                node.stop();
                return ExitCode::FAILURE;
            }
        }
    }
    if interactive {
        eprintln!("Type `help` for the commands, `quit` or Ctrl-D to leave.");
    }

    let mut failed = 0usize;
    let mut quit = false;
    for line in &cli.exec {
        match run_line(&node, line, format) {
            Step::Continue => {}
            Step::Failed => failed += 1,
            Step::Quit => {
                quit = true;
                break;
            }
        }
    }
    if cli.serve && !quit {
        // Only a signal ends a serving node; its handler stops the node and exits.
        loop {
            std::thread::park();
        }
    }
    if !quit && cli.exec.is_empty() {
        match editor.as_mut() {
            Some(editor) => prompt_loop(&node, editor, &cli.node_id, format),
            None => failed += stdin_loop(&node, format),
        }
    }
    shut_down(&node);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `mesh-sync status|peers ADDR`: asks a running node through its HTTP listener.
fn remote(query: Query) -> ExitCode {
    let name = format!("mesh-sync {}", query.name());
    let args = RemoteArgs::parse_from(std::env::args().skip(1).enumerate().map(|(i, a)| {
        // clap names the program after argv[0]; the subcommand reads better in messages.
        if i == 0 {
            name.clone()
        } else {
            a
        }
    }));
    let format = if args.json {
        Format::Json
    } else {
        Format::Plain
    };
    match mesh_cli::remote::run(query, &args) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            report_error(format, &message);
            ExitCode::FAILURE
        }
    }
}

/// `mesh-sync keygen`: prints a new random key in base64.
fn keygen(extra: Option<&str>) -> ExitCode {
    match extra {
        None => {}
        Some("-h" | "--help") => {
            println!(
                "Prints a new random 32-byte key in base64, for a --keyring file.\n\n\
                 Usage: mesh-sync keygen"
            );
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("error: `mesh-sync keygen` takes no arguments, got `{other}`");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    match mesh_core::generate_key() {
        Ok(key) => {
            println!("{}", key.to_base64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds and configures the node (not started); errors carry the exit status to use.
fn build_node(cli: &Cli) -> Result<Node, (u8, String)> {
    let mut config = cli.config();
    if let Some(path) = &cli.keyring {
        config.keyring = mesh_cli::keyring::read(path).map_err(|e| (EXIT_USAGE, e))?;
    }
    let node = Node::new(config).map_err(|e| match e {
        Error::Config(e) => (EXIT_USAGE, config_error_message(&e)),
        other => (1, other.to_string()),
    })?;
    if cli.loss > 0.0 {
        node.set_faults(FaultConfig::lossy(cli.loss))
            .map_err(|e| (EXIT_USAGE, format!("invalid --loss: {e}")))?;
    }
    for peer in &cli.bootstrap {
        node.add_bootstrap_peer(&peer.host, peer.port)
            .map_err(|e| (EXIT_USAGE, format!("invalid --bootstrap {peer}: {e}")))?;
    }
    Ok(node)
}

/// The core names config fields (`peer_timeout`); a user typed flags (`--peer-timeout`).
fn config_error_message(e: &mesh_core::ConfigError) -> String {
    let as_flag = |field: &str| match field {
        "node_id" => "NODE_ID".to_owned(),
        "advertise_addr" => "--advertise".to_owned(),
        flag => format!("--{}", flag.replace('_', "-")),
    };
    let mut message = e.message.to_string();
    for field in [
        "sync_interval",
        "heartbeat_interval",
        "peer_timeout",
        "cluster",
        "node_id",
    ] {
        message = message.replace(field, &as_flag(field));
    }
    format!("invalid {}: {message}", as_flag(e.field))
}

enum Step {
    Continue,
    Failed,
    Quit,
}

/// Parses and runs one command line, printing its result or its error.
fn run_line(node: &Node, line: &str, format: Format) -> Step {
    let command = match command::parse(line) {
        Ok(Some(command)) => command,
        Ok(None) => return Step::Continue,
        Err(message) => {
            report_error(format, &message);
            return Step::Failed;
        }
    };
    if command == Command::Quit {
        return Step::Quit;
    }
    match command::execute(node, &command, format) {
        Ok(output) => {
            if !output.is_empty() {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{output}");
                let _ = stdout.flush();
            }
            Step::Continue
        }
        Err(message) => {
            report_error(format, &message);
            Step::Failed
        }
    }
}

/// Errors go to standard error in plain mode and, as `{"error": ...}`, to standard
/// output in JSON mode so that every command there answers with exactly one line.
fn report_error(format: Format, message: &str) {
    match format {
        Format::Plain => eprintln!("error: {message}"),
        Format::Json => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", command::json_error(message));
            let _ = stdout.flush();
        }
    }
}

/// Interactive prompt: a mistyped command is reported and the prompt comes back.
fn prompt_loop(node: &Node, editor: &mut rustyline::DefaultEditor, node_id: &str, format: Format) {
    use rustyline::error::ReadlineError;
    let prompt = format!("{node_id}> ");
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if let Step::Quit = run_line(node, &line, format) {
                    return;
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return,
            Err(e) => {
                report_error(format, &format!("cannot read the terminal: {e}"));
                return;
            }
        }
    }
}

/// Commands from a pipe or file; returns how many failed.
fn stdin_loop(node: &Node, format: Format) -> usize {
    let mut failed = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            report_error(format, "standard input is not valid UTF-8 text");
            return failed + 1;
        };
        match run_line(node, &line, format) {
            Step::Continue => {}
            Step::Failed => failed += 1,
            Step::Quit => break,
        }
    }
    failed
}

/// Gives writes still in flight a moment to be acknowledged, so a script's last `set`
/// reaches the mesh before the node leaves, then stops the node.
fn shut_down(node: &Node) {
    let start = Instant::now();
    // A write is batched for a moment before it is sent and counted as unacknowledged.
    std::thread::sleep(Duration::from_millis(50));
    while start.elapsed() < LINGER {
        let status = node.status();
        if status.pending_acks == 0 || status.peers.alive_peers == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    node.stop();
}

/// Ctrl-C (outside the prompt's line editor, which reads it as a key) and SIGTERM: stop
/// the node, put the terminal back as it was, and exit.
fn install_shutdown_handler(node: Arc<Node>, format: Format, interactive: bool) {
    use nix::sys::termios;
    // The line editor keeps the terminal in raw mode while it waits for input; exiting
    // from another thread would leave it that way.
    let saved = if interactive {
        termios::tcgetattr(std::io::stdin()).ok()
    } else {
        None
    };
    let result = ctrlc::set_handler(move || {
        if let Some(saved) = &saved {
            let _ = termios::tcsetattr(std::io::stdin(), termios::SetArg::TCSANOW, saved);
        }
        node.stop();
        if format == Format::Plain {
            // After ^C at a terminal the cursor is still on the echoed line.
            let newline = if interactive { "\n" } else { "" };
            eprintln!("{newline}mesh-sync: node {} stopped", node.node_id());
        }
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    });
    if let Err(e) = result {
        eprintln!("warning: Ctrl-C and SIGTERM will not stop the node cleanly: {e}");
    }
}

/// Where notices (startup line, peer changes, remote writes) are printed: above the
/// prompt when a line editor owns the terminal, else on standard error.
struct Notices {
    format: Format,
    printer: Mutex<Option<Box<dyn rustyline::ExternalPrinter + Send>>>,
}

impl Notices {
    fn new(format: Format) -> Notices {
        Notices {
            format,
            printer: Mutex::new(None),
        }
    }

    fn line(&self, plain: &str, json: serde_json::Value) {
        let text = match self.format {
            Format::Plain => plain.to_owned(),
            Format::Json => json.to_string(),
        };
        if let Some(printer) = self.printer.lock().as_mut() {
            if printer.print(format!("{text}\n")).is_ok() {
                return;
            }
        }
        eprintln!("{text}");
    }

    fn event(&self, event: &Event) {
        use serde_json::json;
        match event {
            Event::StateChanged {
                key,
                value,
                origin: ChangeOrigin::Sync,
            } => match value {
                Some(value) => self.line(
                    &format!("[sync] {key} = {}", value.to_json()),
                    json!({"event": "sync", "key": key, "value": value.to_json_value()}),
                ),
                None => self.line(
                    &format!("[sync] {key} deleted"),
                    json!({"event": "sync", "key": key, "deleted": true}),
                ),
            },
            // The command that made a local change already answered for it.
            Event::StateChanged { .. } => {}
            Event::PeerDiscovered { node_id, addr } => self.line(
                &format!("[peer] {node_id} joined from {addr}"),
                json!({"event": "peer_discovered", "node_id": node_id, "addr": addr.to_string()}),
            ),
            Event::PeerFailed { node_id, addr } => self.line(
                &format!("[peer] {node_id} at {addr} stopped answering: failed"),
                json!({"event": "peer_failed", "node_id": node_id, "addr": addr.to_string()}),
            ),
            Event::PeerLeft { node_id, addr } => self.line(
                &format!("[peer] {node_id} at {addr} left"),
                json!({"event": "peer_left", "node_id": node_id, "addr": addr.to_string()}),
            ),
            Event::PeerRecovered { node_id, addr } => self.line(
                &format!("[peer] {node_id} is back, at {addr}"),
                json!({"event": "peer_recovered", "node_id": node_id, "addr": addr.to_string()}),
            ),
            Event::Message { sender, data } => {
                let text = String::from_utf8_lossy(data);
                self.line(
                    &format!("[message from {sender}] {text}"),
                    json!({"event": "message", "from": sender, "text": text}),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn help_defaults_are_the_core_defaults() {
        let cli = Cli::parse_from(["mesh-sync", "n1"]);
        let ours = cli.config();
        let core = Config::new("n1", 0);
        assert_eq!(ours.host, core.host);
        assert_eq!(ours.cluster, core.cluster);
        assert_eq!(ours.sync_interval, core.sync_interval);
        assert_eq!(ours.heartbeat_interval, core.heartbeat_interval);
        assert_eq!(ours.peer_timeout, core.peer_timeout);
        assert_eq!(ours.push_fanout, core.push_fanout);
        assert_eq!(ours.tombstone_grace, core.tombstone_grace);
        assert_eq!(ours.max_collected_deletes, core.max_collected_deletes);
    }

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_the_commands_as_the_prompt_does() {
        let after_help = after_help();
        let prompt_help = command::help();
        for line in prompt_help.lines().skip(1) {
            assert!(
                after_help.lines().any(|l| l == line),
                "`{line}` is in the prompt's help but not in --help"
            );
        }
    }

    /// Splits a shell command line: whitespace separates words, single quotes group.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        let mut any = false;
        for c in line.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    any = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if any {
                        words.push(std::mem::take(&mut word));
                        any = false;
                    }
                }
                c => {
                    word.push(c);
                    any = true;
                }
            }
        }
        if any {
            words.push(word);
        }
        words
    }

    #[test]
    fn the_readme_command_lines_are_accepted() {
        let readme = include_str!("../../README.md");
        let mut checked = 0;
        for line in readme.lines() {
            let Some((_, rest)) = line.split_once("target/release/mesh-sync ") else {
                continue;
            };
            let rest = rest.split(" #").next().unwrap_or(rest);
            let args = std::iter::once("mesh-sync".to_owned()).chain(shell_words(rest));
            if let Err(e) = Cli::try_parse_from(args) {
                panic!("README line `{line}` is rejected: {e}");
            }
            checked += 1;
        }
        assert!(
            checked >= 4,
            "only {checked} command lines found in README.md"
        );
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = Cli::parse_from([
            "mesh-sync",
            "n1",
            "--port",
            "5001",
            "--host",
            "127.0.0.1",
            "--sync-interval",
            "1",
            "--heartbeat-interval",
            "0.5",
            "--peer-timeout",
            "3",
            "--push-fanout",
            "0",
            "--cluster",
            "lab",
            "-b",
            "localhost:5000",
            "--loss",
            "20%",
            "--tombstone-grace",
            "3600",
            "--max-collected-deletes",
            "0",
        ]);
        let config = cli.config();
        assert_eq!(config.port, 5001);
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.cluster, "lab");
        assert_eq!(config.sync_interval, Duration::from_secs(1));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(config.peer_timeout, Duration::from_secs(3));
        assert_eq!(config.push_fanout, 0);
        assert_eq!(cli.bootstrap[0].to_string(), "localhost:5000");
        assert_eq!(cli.loss, 0.2);
        assert_eq!(config.advertise_addr, None);
        assert_eq!(config.tombstone_grace, Duration::from_secs(3600));
        assert_eq!(config.max_collected_deletes, 0);
    }

    #[test]
    fn counts_must_be_counts() {
        for flag in ["--push-fanout", "--max-collected-deletes"] {
            for bad in ["-1", "many", "1.5"] {
                assert!(
                    Cli::try_parse_from(["mesh-sync", "n1", flag, bad]).is_err(),
                    "{flag} {bad}"
                );
            }
        }
        for bad in ["0", "-5", "soon"] {
            assert!(
                Cli::try_parse_from(["mesh-sync", "n1", "--tombstone-grace", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn address_flags_reach_the_config() {
        let cli = Cli::parse_from([
            "mesh-sync",
            "n1",
            "--host",
            "::",
            "--advertise",
            "[2001:db8::6]:5006",
            "--peer",
            "[::1]:5001",
            "--peer",
            "seed.example:5001",
        ]);
        let config = cli.config();
        assert_eq!(config.host, "::");
        assert_eq!(
            config.advertise_addr,
            Some("[2001:db8::6]:5006".parse().unwrap())
        );
        assert_eq!(cli.bootstrap[0].host, "::1");
        assert_eq!(cli.bootstrap[1].to_string(), "seed.example:5001");
        let cli = Cli::parse_from(["mesh-sync", "n1", "--advertise", "10.0.0.5:0"]);
        assert_eq!(
            cli.config().advertise_addr,
            Some("10.0.0.5:0".parse().unwrap())
        );
        for bad in ["10.0.0.5", "::1:7000", "bad host:7000"] {
            assert!(
                Cli::try_parse_from(["mesh-sync", "n1", "--advertise", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
