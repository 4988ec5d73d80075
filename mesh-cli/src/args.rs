//! Parsers for command-line values, written as clap `value_parser`s so a bad value is
//! reported with the flag's name and a reason, and the program exits with status 2.

use std::time::Duration;

/// A peer given on the command line, not yet resolved (resolution happens when the node
/// adds it, so `localhost` and host names work).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `HOST:PORT`, `[IPV6]:PORT`, or a bare `PORT` (meaning 127.0.0.1).
pub fn parse_peer(text: &str) -> Result<PeerAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return check_port(PeerAddr {
            host: "127.0.0.1".to_owned(),
            port,
        });
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got `{text}`"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("missing host in `{text}`"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0-65535)"))?;
    check_port(PeerAddr {
        host: host.to_owned(),
        port,
    })
}

/// Parses the address to advertise, `HOST:PORT` or `[IPV6]:PORT` (port 0: the listening
/// port). A host name is resolved now, to one address (IPv4 preferred).
pub fn parse_advertise(text: &str) -> Result<std::net::SocketAddr, String> {
    let (host, port) = mesh_core::addr::split_host_port(text)?;
    mesh_core::addr::check_host(&host)?;
    mesh_core::resolve(&host, port).map_err(|e| e.to_string())
}

fn check_port(peer: PeerAddr) -> Result<PeerAddr, String> {
    if peer.port == 0 {
        return Err("a peer's port cannot be 0".to_owned());
    }
    Ok(peer)
}

/// Parses a positive number of seconds (`2`, `0.5`).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "must be a positive number of seconds, got `{text}`"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` seconds is too long"))
}

/// Parses a probability in [0, 1]; a trailing `%` divides by 100 (`20%` is `0.2`).
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (trimmed, 1.0),
    };
    let p = number
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a probability"))?
        / scale;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!(
            "must be between 0 and 1 (or 0% and 100%), got `{text}`"
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_in_every_accepted_form() {
        assert_eq!(
            parse_peer("localhost:5000").unwrap(),
            PeerAddr {
                host: "localhost".into(),
                port: 5000
            }
        );
        assert_eq!(parse_peer("[::1]:7").unwrap().host, "::1");
        assert_eq!(parse_peer("[::1]:7").unwrap().to_string(), "[::1]:7");
        assert_eq!(parse_peer("5001").unwrap().to_string(), "127.0.0.1:5001");
    }

    #[test]
    fn advertised_addresses_parse() {
        assert_eq!(
            parse_advertise("10.0.0.5:7000").unwrap(),
            "10.0.0.5:7000".parse().unwrap()
        );
        assert_eq!(
            parse_advertise("[2001:db8::5]:7000").unwrap(),
            "[2001:db8::5]:7000".parse().unwrap()
        );
        assert_eq!(
            parse_advertise("[::ffff:10.0.0.5]:7").unwrap(),
            "10.0.0.5:7".parse().unwrap()
        );
        assert!(parse_advertise("10.0.0.5").is_err());
        assert!(parse_advertise("2001:db8::5:7000")
            .unwrap_err()
            .contains("brackets"));
    }

    #[test]
    fn bad_peers_say_why() {
        assert!(parse_peer("localhost").unwrap_err().contains("HOST:PORT"));
        assert!(parse_peer("host:99999")
            .unwrap_err()
            .contains("port number"));
        assert!(parse_peer(":5000").unwrap_err().contains("missing host"));
        assert!(parse_peer("host:0").unwrap_err().contains("cannot be 0"));
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "nan", "inf", "soon", "1e300"] {
            assert!(parse_seconds(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn probabilities_accept_fractions_and_percentages() {
        assert_eq!(parse_probability("0.2").unwrap(), 0.2);
        assert_eq!(parse_probability("20%").unwrap(), 0.2);
        assert_eq!(parse_probability("0").unwrap(), 0.0);
        for bad in ["1.5", "-0.1", "150%", "lots"] {
            assert!(parse_probability(bad).is_err(), "{bad} was accepted");
        }
    }
}
