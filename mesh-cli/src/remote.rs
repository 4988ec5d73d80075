//! `mesh-sync status ADDR` and `mesh-sync peers ADDR`: ask a running node, through its
//! HTTP listener (`--metrics`), for what its prompt's `status` and `peers` print, and
//! print the same tables (or the same JSON, with `--json`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mesh_core::PeerInfo;

use crate::command::{render_peers, render_status_json};

/// How long to wait for a node's answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What to ask a node for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// Its status and counters.
    Status,
    /// Its peers.
    Peers,
}

impl Query {
    /// The subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            Query::Status => "status",
            Query::Peers => "peers",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Query::Status => "/api/status",
            Query::Peers => "/api/peers",
        }
    }
}

/// Arguments of `mesh-sync status|peers`.
#[derive(Debug, Parser)]
pub struct RemoteArgs {
    /// The node's HTTP listener, as given to its --metrics (HOST:PORT, or a bare PORT on
    /// this machine).
    #[arg(value_name = "ADDR")]
    pub addr: String,

    /// Print the node's JSON document instead of a table.
    #[arg(long)]
    pub json: bool,

    /// File holding the token the listener requires (its --metrics-token).
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
}

/// Runs the query and returns what to print on standard output.
pub fn run(query: Query, args: &RemoteArgs) -> Result<String, String> {
    let token = match &args.token {
        Some(path) => Some(crate::http::read_token(path)?),
        None => None,
    };
    let body = fetch(&url(&args.addr, query.path()), token.as_deref())?;
    let document: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("{} did not answer with JSON: {e}", args.addr))?;
    if args.json {
        return Ok(document.to_string());
    }
    match query {
        Query::Status => render_status_json(&document),
        Query::Peers => {
            let peers: Vec<PeerInfo> = serde_json::from_value(document)
                .map_err(|e| format!("not a mesh-sync peer list: {e}"))?;
            Ok(render_peers(&peers))
        }
    }
}

/// The URL of `path` on the listener at `addr` (`HOST:PORT`, `PORT` or `http://...`).
fn url(addr: &str, path: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        format!("{addr}{path}")
    } else if addr.parse::<u16>().is_ok() {
        format!("http://127.0.0.1:{addr}{path}")
    } else {
        format!("http://{addr}{path}")
    }
}

fn fetch(url: &str, token: Option<&str>) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request
        .call()
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read the answer of {url}: {e}"))?;
    match status.as_u16() {
        200 => Ok(body),
        401 => Err(format!(
            "{url} requires a token: give its file with --token FILE"
        )),
        code => Err(format!("{url} answered HTTP {code}: {}", body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_listener_urls() {
        assert_eq!(
            url("127.0.0.1:9100", "/api/status"),
            "http://127.0.0.1:9100/api/status"
        );
        assert_eq!(url("9100", "/api/peers"), "http://127.0.0.1:9100/api/peers");
        assert_eq!(
            url("http://[::1]:9100/", "/api/peers"),
            "http://[::1]:9100/api/peers"
        );
    }
}
