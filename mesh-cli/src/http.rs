//! The node's HTTP listener (`mesh-sync --metrics ADDR:PORT`): Prometheus metrics at
//! `/metrics`, JSON at `/api/...` for `mesh-sync status ADDR` and the dashboard, and the
//! dashboard itself at `/`. One thread serves requests one at a time: the listener is for
//! an operator and a scraper, not for traffic.
//!
//! Safe by default: it binds the loopback address unless told otherwise, a non-loopback
//! address needs `--metrics-public`, and on a sealed mesh (`--keyring`) also a token,
//! since the dashboard shows every key and value the keyring protects. With a token, every
//! request for data (metrics, `/api/...`) must carry it; the dashboard's compiled-in
//! files, which hold none, are served to anyone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs as _};
use std::path::Path;
use std::sync::Arc;

use mesh_core::{KeyQuery, Node};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::dashboard;

/// Keys per page when the request names no limit.
const DEFAULT_PAGE: usize = 50;
/// Most keys one request may ask for.
const MAX_PAGE: usize = 500;

/// Where and how the listener serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Address to bind (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Whether a non-loopback address was explicitly allowed (`--metrics-public`).
    pub public: bool,
    /// Token every request must carry, as `Authorization: Bearer TOKEN` or `?token=TOKEN`.
    pub token: Option<String>,
}

impl ListenOptions {
    /// Refuses a listener other machines could reach unless it was asked for, and, on a
    /// mesh sealed with a keyring, unless requests need a token.
    pub fn check(&self, sealed: bool) -> Result<(), String> {
        if self.addr.ip().is_loopback() {
            return Ok(());
        }
        if !self.public {
            return Err(format!(
                "--metrics {} can be reached from other machines, and the dashboard shows \
                 every key and value; add --metrics-public to serve it there anyway",
                self.addr
            ));
        }
        if sealed && self.token.is_none() {
            return Err(format!(
                "--metrics {} is public on a mesh sealed with --keyring: requests must \
                 carry a token, give one with --metrics-token FILE",
                self.addr
            ));
        }
        Ok(())
    }
}

/// Parses `--metrics`: `PORT` (on 127.0.0.1), `HOST:PORT` or `[IPV6]:PORT`.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let peer = crate::args::parse_peer(text).or_else(|e| match text.rsplit_once(':') {
        // parse_peer refuses port 0, which a listener may well ask for.
        Some((host, "0")) if !host.is_empty() => Ok(crate::args::PeerAddr {
            host: host.to_owned(),
            port: 0,
        }),
        _ => Err(e),
    })?;
    (peer.host.as_str(), peer.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{}`: {e}", peer.host))?
        .min_by_key(|a| a.is_ipv6())
        .ok_or_else(|| format!("`{}` has no address", peer.host))
}

/// Reads the token file of `--metrics-token`: one line, private to its owner.
pub fn read_token(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read token file {shown}: {e}"))?;
    crate::keyring::check_private(path, &metadata)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token file {shown}: {e}"))?;
    let token = text.trim();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "token file {shown} must hold one token of at least 16 characters, without \
             spaces (e.g. the output of `openssl rand -hex 32`)"
        ));
    }
    Ok(token.to_owned())
}

/// Binds the listener and serves `node` on a thread of its own; returns the bound
/// address (the real port when 0 was asked for).
pub fn serve(node: Arc<Node>, options: &ListenOptions) -> Result<SocketAddr, String> {
    let server = Server::http(options.addr)
        .map_err(|e| format!("cannot listen on {} for HTTP: {e}", options.addr))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| "the HTTP listener has no IP address".to_owned())?;
    let token = options.token.clone();
    std::thread::Builder::new()
        .name("mesh-http".to_owned())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = handle(&node, &request, token.as_deref());
                // A client that went away is nothing the node can act on.
                let _ = request.respond(response);
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(addr)
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn handle(node: &Node, request: &Request, token: Option<&str>) -> Reply {
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // The dashboard's own files hold no data (they are compiled in, the same for every
    // node): a browser loads them without the token, which the page then sends with
    // every request for data.
    if let Some(asset) = dashboard::asset(path) {
        return reply(200, asset.content_type, asset.body)
            .with_header(header("Content-Security-Policy", dashboard::CSP));
    }
    if let Some(expected) = token {
        if !authorized(request, param("token"), expected) {
            return reply(
                401,
                "text/plain; charset=utf-8",
                "a valid token is required\n",
            )
            .with_header(header("WWW-Authenticate", "Bearer"));
        }
    }
    if !matches!(request.method(), Method::Get | Method::Head) {
        return reply(405, "text/plain; charset=utf-8", "only GET is served\n")
            .with_header(header("Allow", "GET, HEAD"));
    }
    match path {
        "/metrics" => reply(200, mesh_core::metrics::CONTENT_TYPE, &node.metrics_text()),
        "/api/status" => json_reply(&crate::command::status_json(node)),
        "/api/peers" => json_reply(&json!(node.peers())),
        "/api/propagation" => json_reply(&propagation_json(node)),
        "/api/keys" => match page_query(param("limit")) {
            Ok(limit) => json_reply(&keys_json(
                node,
                &KeyQuery {
                    contains: param("q").unwrap_or(""),
                    after: param("after"),
                    limit,
                },
            )),
            Err(message) => reply(400, "text/plain; charset=utf-8", &message),
        },
        _ => reply(404, "text/plain; charset=utf-8", "not found\n"),
    }
}

/// Whether the request carries `expected` as a bearer token or a `token` parameter,
/// compared in constant time.
fn authorized(request: &Request, param: Option<&str>, expected: &str) -> bool {
    let bearer = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "));
    [bearer, param]
        .into_iter()
        .flatten()
        .any(|given| bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())))
}

fn page_query(limit: Option<&str>) -> Result<usize, String> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(format!("limit must be a number from 1 to {MAX_PAGE}\n")),
        },
    }
}

fn keys_json(node: &Node, query: &KeyQuery<'_>) -> serde_json::Value {
    let page = node.browse_keys(query);
    let entries: Vec<serde_json::Value> = page
        .entries
        .iter()
        .map(|e| {
            // Timestamps and origins exceed the integers JavaScript holds exactly.
            json!({
                "key": e.key,
                "value": e.value.to_json_value(),
                "hlc": e.hlc.to_string(),
                "written_ms": e.written_ms,
                "origin": format!("{:016x}", e.origin),
                "origin_node": e.origin_node,
            })
        })
        .collect();
    json!({"matched": page.matched, "next_after": page.next_after, "entries": entries})
}

fn propagation_json(node: &Node) -> serde_json::Value {
    let lag = node.metrics_snapshot().propagation;
    let buckets: Vec<serde_json::Value> = lag
        .by_bucket()
        .map(|(le_ms, count)| json!({"le_ms": le_ms, "count": count}))
        .collect();
    json!({"count": lag.count, "sum_ms": lag.sum_ms, "buckets": buckets})
}

fn json_reply(value: &serde_json::Value) -> Reply {
    reply(200, "application/json", &value.to_string())
}

fn reply(status: u16, content_type: &str, body: &str) -> Reply {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values here are ASCII constants")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(addr: &str, public: bool, token: bool) -> ListenOptions {
        ListenOptions {
            addr: addr.parse().unwrap(),
            public,
            token: token.then(|| "0123456789abcdef".to_owned()),
        }
    }

    #[test]
    fn loopback_is_served_without_asking() {
        assert!(options("127.0.0.1:0", false, false).check(true).is_ok());
        assert!(options("[::1]:9000", false, false).check(false).is_ok());
    }

    #[test]
    fn other_addresses_need_the_public_flag() {
        let err = options("0.0.0.0:9000", false, false)
            .check(false)
            .unwrap_err();
        assert!(err.contains("--metrics-public"), "{err}");
        assert!(options("0.0.0.0:9000", true, false).check(false).is_ok());
    }

    #[test]
    fn a_public_listener_of_a_sealed_mesh_needs_a_token() {
        let err = options("0.0.0.0:9000", true, false)
            .check(true)
            .unwrap_err();
        assert!(err.contains("--metrics-token"), "{err}");
        assert!(options("0.0.0.0:9000", true, true).check(true).is_ok());
    }

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(
            parse_listen_addr("9100").unwrap(),
            "127.0.0.1:9100".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("0.0.0.0:0").unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert!(parse_listen_addr("localhost:0").unwrap().ip().is_loopback());
        assert!(parse_listen_addr("nonsense").is_err());
    }

    #[test]
    fn page_limits_are_bounded() {
        assert_eq!(page_query(None), Ok(DEFAULT_PAGE));
        assert_eq!(page_query(Some("10")), Ok(10));
        for bad in ["0", "501", "-1", "many"] {
            assert!(page_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
