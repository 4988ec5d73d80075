//! The node's command language, shared by the interactive prompt, `--exec` and scripts
//! on standard input: parsing a line into a [`Command`] and running it against a node.
//!
//! Results go to standard output as one line (or a block, for `list`, `status`, `peers`
//! and `help` in plain mode); values are always printed as JSON, so `"42"` (a string) and
//! `42` (an integer) are told apart. With [`Format::Json`] every command prints exactly
//! one JSON line, errors included, so a script can pair commands with answers.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mesh_core::{JsonValueError, Node, PeerInfo, Status, Value};
use serde::Deserialize as _;
use serde_json::json;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For people: JSON values, aligned tables.
    Plain,
    /// For programs: one JSON document per line.
    Json,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `set KEY VALUE [--ttl SECS]`
    Set {
        /// The key.
        key: String,
        /// The value, parsed from JSON or taken as a string.
        value: Value,
        /// How long the key lives (`--ttl SECS` at the end of the line); `None`: for good.
        ttl: Option<Duration>,
    },
    /// `get KEY`
    Get {
        /// The key.
        key: String,
    },
    /// `delete KEY`
    Delete {
        /// The key.
        key: String,
    },
    /// `list`: every live key and its value.
    List,
    /// `status`: the node's counters.
    Status,
    /// `peers`: every known peer.
    Peers,
    /// `help`
    Help,
    /// `sleep SECONDS`, for scripts that wait for the mesh.
    Sleep(Duration),
    /// `wait KEY [SECONDS]`: block until the key has a value.
    Wait {
        /// The key.
        key: String,
        /// How long to wait before failing.
        timeout: Duration,
    },
    /// `watch [PREFIX]`: print every change of the keys under PREFIX from now on.
    Watch {
        /// The prefix; empty for every key.
        prefix: String,
    },
    /// `send PEER TEXT`: a message to one peer.
    Send {
        /// The peer's node id.
        peer: String,
        /// The message.
        text: String,
    },
    /// `broadcast TEXT`: a message to every alive peer.
    Broadcast {
        /// The message.
        text: String,
    },
    /// `quit` or `exit`.
    Quit,
}

/// How long `wait KEY` waits when no timeout is given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// One command of the language, as the help texts describe it.
#[derive(Clone, Copy, Debug)]
pub struct CommandHelp {
    /// The word that starts the command.
    pub name: &'static str,
    /// Its arguments, as written in the help (`KEY VALUE`); empty for none.
    pub args: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// Further lines printed under the summary.
    pub notes: &'static [&'static str],
}

impl CommandHelp {
    /// The command as it is typed: its name, then its arguments.
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_owned()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// Every command, in the order the help lists them. The prompt's `help` and
/// `mesh-sync --help` are both rendered from it, and the parser's usage messages quote it.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "set",
        args: "KEY VALUE",
        summary: "store VALUE under KEY; VALUE is parsed as JSON when it parses",
        notes: &[
            "(42 is an int, 4.2 a float, true a bool, [1,2] a list,",
            "{\"a\":1} a map, \"42\" a string), otherwise taken as a string",
            "(hello world is the string \"hello world\");",
            "`set KEY VALUE --ttl SECS` expires KEY on every node after SECS",
        ],
    },
    CommandHelp {
        name: "get",
        args: "KEY",
        summary: "print KEY's value as JSON, or (not found)",
        notes: &[],
    },
    CommandHelp {
        name: "delete",
        args: "KEY",
        summary: "delete KEY everywhere in the mesh",
        notes: &[],
    },
    CommandHelp {
        name: "list",
        args: "",
        summary: "print every key and its value",
        notes: &[],
    },
    CommandHelp {
        name: "status",
        args: "",
        summary: "print this node's state and traffic counters",
        notes: &[],
    },
    CommandHelp {
        name: "peers",
        args: "",
        summary: "print every known peer and how it is seen",
        notes: &[],
    },
    CommandHelp {
        name: "wait",
        args: "KEY [SECS]",
        summary: "wait until KEY has a value (default 10 s), then print it",
        notes: &[],
    },
    CommandHelp {
        name: "watch",
        args: "[PREFIX]",
        summary: "print every change of the keys starting with PREFIX from now on",
        notes: &["(all keys without PREFIX), until the node leaves"],
    },
    CommandHelp {
        name: "send",
        args: "PEER TEXT",
        summary: "send TEXT as a message to the peer with node id PEER (not stored)",
        notes: &["received messages print as [message from PEER] TEXT"],
    },
    CommandHelp {
        name: "broadcast",
        args: "TEXT",
        summary: "send TEXT as a message to every alive peer (not stored)",
        notes: &[],
    },
    CommandHelp {
        name: "sleep",
        args: "SECS",
        summary: "pause (for scripts)",
        notes: &[],
    },
    CommandHelp {
        name: "help",
        args: "",
        summary: "print this list of commands",
        notes: &[],
    },
    CommandHelp {
        name: "quit",
        args: "",
        summary: "leave (also exit, Ctrl-D; Ctrl-C at the prompt)",
        notes: &[],
    },
];

/// What holds for every command line, printed after the list of commands.
const SYNTAX_NOTES: &str = "\
Keys containing spaces can be written as JSON strings: get \"my key\".
Lines starting with # are ignored.";

/// The list of commands under `heading`, followed by the syntax notes: the body of the
/// prompt's `help` and of the commands section of `mesh-sync --help`.
pub fn command_list(heading: &str) -> String {
    let width = COMMANDS.iter().map(|c| c.usage().len()).max().unwrap_or(0) + 2;
    let mut out = format!("{heading}\n");
    for command in COMMANDS {
        let _ = writeln!(out, "  {:<width$}  {}", command.usage(), command.summary);
        for note in command.notes {
            let _ = writeln!(out, "  {:<width$}  {note}", "");
        }
    }
    out.push_str(SYNTAX_NOTES);
    out
}

/// The text `help` prints.
pub fn help() -> String {
    command_list("Commands:")
}

/// The usage form of the command called `name`, as the help lists it.
fn form(name: &str) -> String {
    COMMANDS
        .iter()
        .find(|c| c.name == name)
        .map_or_else(|| name.to_owned(), CommandHelp::usage)
}

/// Parses one input line. Blank lines and `#` comments give `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = split_word(line);
    let command = match word.to_ascii_lowercase().as_str() {
        "set" => {
            let (key, rest) = parse_key(rest).map_err(|e| usage("set", &e))?;
            if rest.is_empty() {
                return Err(usage("set", "missing VALUE"));
            }
            let (rest, ttl) = split_ttl(rest)?;
            if rest.is_empty() {
                return Err(usage("set", "missing VALUE"));
            }
            Command::Set {
                key,
                value: parse_value(rest)?,
                ttl,
            }
        }
        "get" => Command::Get {
            key: single_key(rest, "get")?,
        },
        "delete" | "del" => Command::Delete {
            key: single_key(rest, "delete")?,
        },
        "wait" => {
            let (key, rest) = parse_key(rest).map_err(|e| usage("wait", &e))?;
            let timeout = if rest.is_empty() {
                DEFAULT_WAIT
            } else {
                crate::args::parse_seconds(rest).map_err(|e| usage("wait", &e))?
            };
            Command::Wait { key, timeout }
        }
        "sleep" => {
            if rest.is_empty() {
                return Err(usage("sleep", "missing SECS"));
            }
            Command::Sleep(crate::args::parse_seconds(rest).map_err(|e| usage("sleep", &e))?)
        }
        "watch" => Command::Watch {
            prefix: if rest.is_empty() {
                String::new()
            } else {
                single_key(rest, "watch")?
            },
        },
        "send" => {
            let (peer, text) = parse_key(rest).map_err(|_| usage("send", "missing PEER"))?;
            if text.is_empty() {
                return Err(usage("send", "missing TEXT"));
            }
            Command::Send {
                peer,
                text: text.to_owned(),
            }
        }
        "broadcast" => {
            if rest.is_empty() {
                return Err(usage("broadcast", "missing TEXT"));
            }
            Command::Broadcast {
                text: rest.to_owned(),
            }
        }
        "list" | "ls" => no_args(rest, "list", Command::List)?,
        "status" => no_args(rest, "status", Command::Status)?,
        "peers" => no_args(rest, "peers", Command::Peers)?,
        "help" | "?" => Command::Help,
        "quit" | "exit" => no_args(rest, word, Command::Quit)?,
        _ => {
            return Err(format!(
                "unknown command `{word}` (type `help` for the list of commands)"
            ))
        }
    };
    Ok(Some(command))
}

/// Splits a trailing `--ttl SECS` (or `--ttl=SECS`) off the text after `set KEY`. A
/// string value that itself ends that way is written in double quotes: text that is
/// JSON as a whole is the value, whatever it ends with.
fn split_ttl(text: &str) -> Result<(&str, Option<Duration>), String> {
    if Value::from_json(text).is_ok() {
        return Ok((text, None));
    }
    let ttl = |secs: &str| {
        crate::args::parse_seconds(secs).map_err(|e| usage("set", &format!("--ttl: {e}")))
    };
    let (head, last) = match text.rsplit_once(char::is_whitespace) {
        Some((head, last)) => (head.trim_end(), last),
        None => ("", text),
    };
    if let Some(secs) = last.strip_prefix("--ttl=") {
        return Ok((head, Some(ttl(secs)?)));
    }
    if last == "--ttl" {
        return Err(usage("set", "--ttl needs SECS"));
    }
    if let Some(value) = head.strip_suffix("--ttl") {
        if value.is_empty() || value.ends_with(char::is_whitespace) {
            return Ok((value.trim_end(), Some(ttl(last)?)));
        }
    }
    Ok((text, None))
}

/// Turns the text after `set KEY` into a value: JSON when it parses, else the text itself
/// as a string. JSON that parses but cannot be stored (an integer beyond 64 bits, bad
/// base64 in `{"$bytes": ...}`) is an error rather than silently becoming a string.
pub fn parse_value(text: &str) -> Result<Value, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<i64>().is_err()
    {
        // JSON parsers turn the largest of these into floats, losing digits unnoticed.
        return Err(format!(
            "integer {text} is outside the signed 64-bit range; write it in double quotes to store it as a string"
        ));
    }
    match Value::from_json(text) {
        Ok(value) => Ok(value),
        Err(JsonValueError::Syntax(_)) => Ok(Value::String(text.to_owned())),
        Err(e) => Err(format!(
            "{e}; write the value in double quotes to store it as a string"
        )),
    }
}

/// `problem` with the usage of the command called `name`.
fn usage(name: &str, problem: &str) -> String {
    format!("{problem} (usage: {})", form(name))
}

fn no_args(rest: &str, name: &str, command: Command) -> Result<Command, String> {
    if rest.is_empty() {
        Ok(command)
    } else {
        Err(format!("`{name}` takes no arguments"))
    }
}

fn single_key(rest: &str, name: &str) -> Result<String, String> {
    let (key, rest) = parse_key(rest).map_err(|e| usage(name, &e))?;
    if !rest.is_empty() {
        return Err(usage(name, &format!("unexpected `{rest}` after the key")));
    }
    Ok(key)
}

/// Splits off the first whitespace-delimited word; the rest is trimmed.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// A key is a bare word, or a JSON string when it starts with `"`.
fn parse_key(text: &str) -> Result<(String, &str), String> {
    if text.is_empty() {
        return Err("missing KEY".to_owned());
    }
    if text.starts_with('"') {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<String>();
        return match stream.next() {
            Some(Ok(key)) => Ok((key, text[stream.byte_offset()..].trim())),
            _ => Err(format!("bad quoted key in `{text}`")),
        };
    }
    let (key, rest) = split_word(text);
    Ok((key.to_owned(), rest))
}

/// Runs `command` (anything but [`Command::Quit`], which the caller handles) and returns
/// what to print on standard output, or an error message.
pub fn execute(node: &Node, command: &Command, format: Format) -> Result<String, String> {
    let json = format == Format::Json;
    match command {
        Command::Set { key, value, ttl } => {
            match ttl {
                Some(ttl) => node.set_with_ttl(key, value.clone(), *ttl),
                None => node.set(key, value.clone()),
            }
            .map_err(|e| e.to_string())?;
            Ok(if json {
                let mut answer = json!({"ok": true, "key": key, "value": value.to_json_value()});
                if let Some(ttl) = ttl {
                    answer["ttl"] = json!(ttl.as_secs_f64());
                }
                answer.to_string()
            } else {
                "ok".to_owned()
            })
        }
        Command::Get { key } => Ok(render_lookup(key, node.get(key), format)),
        Command::Wait { key, timeout } => {
            let deadline = Instant::now() + *timeout;
            loop {
                if let Some(value) = node.get(key) {
                    return Ok(render_lookup(key, Some(value), format));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "`{key}` got no value within {} s",
                        timeout.as_secs_f64()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Command::Delete { key } => {
            let existed = node.delete(key).map_err(|e| e.to_string())?;
            Ok(match (json, existed) {
                (true, _) => json!({"ok": true, "key": key, "deleted": existed}).to_string(),
                (false, true) => "deleted".to_owned(),
                (false, false) => "(not found)".to_owned(),
            })
        }
        Command::List => {
            let data = node.get_all();
            if json {
                let map: serde_json::Map<String, serde_json::Value> = data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json_value()))
                    .collect();
                return Ok(serde_json::Value::Object(map).to_string());
            }
            if data.is_empty() {
                return Ok("(empty)".to_owned());
            }
            let mut out = String::new();
            for (key, value) in &data {
                let _ = writeln!(out, "{} = {}", display_key(key), value.to_json());
            }
            out.pop();
            Ok(out)
        }
        Command::Status => {
            let status = status_json(node);
            if json {
                return Ok(status.to_string());
            }
            render_status_json(&status)
        }
        Command::Peers => {
            let peers = node.peers();
            if json {
                return Ok(serde_json::to_string(&peers).unwrap_or_else(|_| "[]".to_owned()));
            }
            Ok(render_peers(&peers))
        }
        Command::Help => Ok(if json {
            json!({ "help": help() }).to_string()
        } else {
            help()
        }),
        Command::Sleep(duration) => {
            std::thread::sleep(*duration);
            Ok(if json {
                json!({"ok": true}).to_string()
            } else {
                String::new()
            })
        }
        Command::Watch { prefix } => Ok(crate::watch::start(node, prefix, format)),
        Command::Send { peer, text } => {
            node.send(peer, text.as_bytes())
                .map_err(|e| e.to_string())?;
            Ok(if json {
                json!({"ok": true, "sent_to": peer}).to_string()
            } else {
                "sent".to_owned()
            })
        }
        Command::Broadcast { text } => {
            let peers = node.broadcast(text.as_bytes()).map_err(|e| e.to_string())?;
            Ok(if json {
                json!({"ok": true, "peers": peers}).to_string()
            } else {
                format!("sent to {peers} peer{}", if peers == 1 { "" } else { "s" })
            })
        }
        Command::Quit => Ok(String::new()),
    }
}

/// How an error is printed in JSON mode (plain mode prints `error: MESSAGE` on stderr).
pub fn json_error(message: &str) -> String {
    json!({ "error": message }).to_string()
}

fn render_lookup(key: &str, value: Option<Value>, format: Format) -> String {
    match (format, value) {
        (Format::Json, Some(v)) => {
            json!({"key": key, "found": true, "value": v.to_json_value()}).to_string()
        }
        (Format::Json, None) => json!({"key": key, "found": false, "value": null}).to_string(),
        (Format::Plain, Some(v)) => v.to_json(),
        (Format::Plain, None) => "(not found)".to_owned(),
    }
}

/// Keys print bare unless they would not read back as one word.
fn display_key(key: &str) -> String {
    if key.is_empty() || key.starts_with('"') || key.chars().any(char::is_whitespace) {
        serde_json::Value::String(key.to_owned()).to_string()
    } else {
        key.to_owned()
    }
}

fn kib(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// The node's status with the fault injection in force: what `status --json` prints and
/// the HTTP listener serves at `/api/status`.
pub fn status_json(node: &Node) -> serde_json::Value {
    let mut value = node.status().to_json_value();
    let faults = node.faults();
    let stats = node.fault_stats();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "faults".to_owned(),
            json!({"loss_rate": faults.loss_rate, "stats": stats}),
        );
    }
    value
}

/// The `status` table, from [`status_json`]'s document (of this node or a remote one).
pub fn render_status_json(value: &serde_json::Value) -> Result<String, String> {
    let status =
        Status::deserialize(value).map_err(|e| format!("not a mesh-sync status document: {e}"))?;
    let mut out = render_status(&status);
    let faults = &value["faults"];
    let loss_rate = faults["loss_rate"].as_f64().unwrap_or(0.0);
    if loss_rate > 0.0 {
        let _ = write!(
            out,
            "\nfaults      {:.0}% loss injected: {} of {} outgoing datagrams dropped",
            loss_rate * 100.0,
            faults["stats"]["packets_dropped"].as_u64().unwrap_or(0),
            faults["stats"]["packets_sent"].as_u64().unwrap_or(0)
        );
    }
    Ok(out)
}

fn render_status(s: &Status) -> String {
    let c = &s.counters;
    let d = &c.dropped;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node        {} on port {} ({})",
        s.node_id,
        s.port,
        if s.running { "running" } else { "stopped" }
    );
    let _ = writeln!(
        out,
        "keys        {} live, {} deleted (tombstones), state version {}",
        s.data_keys, s.tombstones, s.state_version
    );
    let _ = writeln!(
        out,
        "peers       {} alive, {} suspect, {} dead, {} known ({} bootstrap)",
        s.peers.alive_peers,
        s.peers.suspect_peers,
        s.peers.dead_peers,
        s.peers.total_peers,
        s.peers.bootstrap_peers
    );
    let _ = writeln!(
        out,
        "in flight   {} datagrams awaiting acknowledgement",
        s.pending_acks
    );
    let _ = writeln!(
        out,
        "sent        {} datagrams, {} ({} retransmits, {} given up)",
        c.datagrams_sent,
        kib(c.bytes_sent),
        c.retransmits,
        c.given_up
    );
    let _ = writeln!(
        out,
        "received    {} datagrams, {}",
        c.datagrams_received,
        kib(c.bytes_received)
    );
    let _ = writeln!(
        out,
        "sync        {} anti-entropy rounds, {} entries received, {} applied",
        c.sync_rounds, c.entries_received, c.entries_applied
    );
    if let Some(st) = &s.storage {
        let _ = writeln!(
            out,
            "storage     {} ({}), {} entries loaded in {} ms{}, {} commits (mean {} us, max {} us){}",
            st.path,
            st.durability,
            st.loaded_entries,
            st.load_ms,
            if st.discarded_stale {
                ", stale state discarded"
            } else {
                ""
            },
            st.commits,
            st.commit_mean_us,
            st.commit_max_us,
            st.error
                .as_ref()
                .map_or(String::new(), |e| format!(", FAILING: {e}"))
        );
    }
    let reasons: Vec<String> = d
        .by_reason()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {}", name.replace('_', " ")))
        .collect();
    let _ = write!(
        out,
        "dropped     {}",
        if reasons.is_empty() {
            "nothing".to_owned()
        } else {
            reasons.join(", ")
        }
    );
    out
}

/// The `peers` table.
pub fn render_peers(peers: &[PeerInfo]) -> String {
    if peers.is_empty() {
        return "(no peers)".to_owned();
    }
    let rows: Vec<[String; 7]> = peers
        .iter()
        .map(|p| {
            [
                p.node_id.clone().unwrap_or_else(|| "?".to_owned()),
                p.addr.to_string(),
                p.state.as_str().to_owned() + if p.bootstrap { " (bootstrap)" } else { "" },
                p.rtt_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
                p.last_seen_ms.map_or_else(
                    || "never".to_owned(),
                    |ms| format!("{:.1} s ago", ms as f64 / 1000.0),
                ),
                p.pending_acks.to_string(),
                format!("{} B", p.datagram_size),
            ]
        })
        .collect();
    let header = [
        "NODE",
        "ADDRESS",
        "STATE",
        "RTT",
        "LAST HEARD",
        "UNACKED",
        "DATAGRAM",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    #[test]
    fn send_and_broadcast_take_a_peer_and_the_rest_of_the_line() {
        match parsed("send beta  hello there ") {
            Command::Send { peer, text } => {
                assert_eq!((peer.as_str(), text.as_str()), ("beta", "hello there"))
            }
            other => panic!("parsed as {other:?}"),
        }
        match parsed("send \"node 2\" hi") {
            Command::Send { peer, text } => {
                assert_eq!((peer.as_str(), text.as_str()), ("node 2", "hi"))
            }
            other => panic!("parsed as {other:?}"),
        }
        match parsed("broadcast hello all") {
            Command::Broadcast { text } => assert_eq!(text, "hello all"),
            other => panic!("parsed as {other:?}"),
        }
        assert!(parse("send beta").unwrap_err().contains("missing TEXT"));
        assert!(parse("send").unwrap_err().contains("missing PEER"));
        assert!(parse("broadcast").unwrap_err().contains("missing TEXT"));
        assert!(help().contains("send PEER TEXT") && help().contains("broadcast TEXT"));
    }

    #[test]
    fn values_are_json_when_they_parse_and_strings_otherwise() {
        let cases = [
            ("set n 42", Value::Int(42)),
            ("set f 4.5", Value::Float(4.5)),
            ("set b true", Value::Bool(true)),
            ("set z null", Value::Null),
            ("set q \"42\"", Value::String("42".into())),
            ("set s hello", Value::String("hello".into())),
            ("set s  hello world ", Value::String("hello world".into())),
            (
                "set l [1, \"x\"]",
                Value::List(vec![Value::Int(1), "x".into()]),
            ),
            ("set broken {\"a\":", Value::String("{\"a\":".into())),
        ];
        for (line, want) in cases {
            match parsed(line) {
                Command::Set { value, .. } => assert_eq!(value, want, "{line}"),
                other => panic!("{line} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn json_that_cannot_be_stored_is_an_error_not_a_string() {
        for big in [
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
        ] {
            let err = parse(&format!("set big {big}")).unwrap_err();
            assert!(err.contains("64-bit"), "{err}");
        }
        let err = parse(r#"set b {"$bytes": "!!"}"#).unwrap_err();
        assert!(err.contains("base64"), "{err}");
        assert_eq!(
            parsed("set n -9223372036854775808"),
            Command::Set {
                key: "n".into(),
                value: Value::Int(i64::MIN),
                ttl: None,
            }
        );
    }

    #[test]
    fn a_ttl_ends_the_line() {
        let set = |key: &str, value: Value, ttl: Option<Duration>| Command::Set {
            key: key.into(),
            value,
            ttl,
        };
        assert_eq!(
            parsed("set k 42 --ttl 1.5"),
            set("k", Value::Int(42), Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            parsed("set k hello world --ttl=30"),
            set("k", "hello world".into(), Some(Duration::from_secs(30)))
        );
        assert_eq!(
            parsed("set k {\"a\": 1}   --ttl 2"),
            set(
                "k",
                Value::Map([("a".to_owned(), Value::Int(1))].into_iter().collect()),
                Some(Duration::from_secs(2))
            )
        );
        // Quoted, it is part of the value; glued to a word, too.
        assert_eq!(
            parsed("set k \"x --ttl 5\""),
            set("k", "x --ttl 5".into(), None)
        );
        assert_eq!(parsed("set k x--ttl 5"), set("k", "x--ttl 5".into(), None));
        for (line, needle) in [
            ("set k 1 --ttl 0", "positive"),
            ("set k 1 --ttl -3", "positive"),
            ("set k 1 --ttl soon", "not a number"),
            ("set k 1 --ttl", "--ttl needs SECS"),
            ("set k --ttl 5", "missing VALUE"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(needle), "`{line}` gave `{err}`");
        }
    }

    #[test]
    fn keys_may_be_quoted() {
        assert_eq!(
            parsed("set \"my key\" 1"),
            Command::Set {
                key: "my key".into(),
                value: Value::Int(1),
                ttl: None,
            }
        );
        assert_eq!(
            parsed("get \"my key\""),
            Command::Get {
                key: "my key".into()
            }
        );
        assert!(parse("get \"unterminated").is_err());
    }

    #[test]
    fn commands_are_case_insensitive_and_comments_are_skipped() {
        assert_eq!(parsed("LIST"), Command::List);
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("# set a 1").unwrap(), None);
        assert_eq!(
            parsed("wait k 2.5"),
            Command::Wait {
                key: "k".into(),
                timeout: Duration::from_millis(2500)
            }
        );
    }

    #[test]
    fn bad_commands_explain_themselves() {
        for (line, needle) in [
            ("frobnicate", "unknown command `frobnicate`"),
            ("set", "missing KEY"),
            ("set k", "missing VALUE"),
            ("get", "usage: get KEY"),
            ("get a b", "unexpected `b`"),
            ("list all", "takes no arguments"),
            ("sleep", "missing SECS"),
            ("sleep -1", "positive"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(needle), "`{line}` gave `{err}`");
        }
    }

    #[test]
    fn every_listed_command_is_understood() {
        for command in COMMANDS {
            if let Err(e) = parse(command.name) {
                assert!(!e.contains("unknown command"), "{}: {e}", command.name);
            }
        }
    }

    #[test]
    fn usage_messages_quote_the_list() {
        for (line, form) in [
            ("set", "set KEY VALUE"),
            ("get", "get KEY"),
            ("delete", "delete KEY"),
            ("wait", "wait KEY [SECS]"),
            ("sleep", "sleep SECS"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(
                err.ends_with(&format!("(usage: {form})")),
                "`{line}` gave `{err}`"
            );
        }
    }

    #[test]
    fn help_lists_every_command_in_one_column() {
        let text = help();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("Commands:"));
        let column = "  set KEY VALUE      ".len();
        for command in COMMANDS {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("  {} ", command.usage())))
                .unwrap_or_else(|| panic!("`{}` missing from help", command.usage()));
            assert_eq!(&line[column..], command.summary);
        }
        assert!(text.ends_with("Lines starting with # are ignored."));
    }

    #[test]
    fn odd_keys_are_quoted_when_listed() {
        assert_eq!(display_key("plain"), "plain");
        assert_eq!(display_key("two words"), "\"two words\"");
        assert_eq!(display_key(""), "\"\"");
    }
}
