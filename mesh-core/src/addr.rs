//! Peer addresses: one canonical form per peer, and the checks applied to the addresses
//! a node is given or told.
//!
//! A dual-stack socket (`::` with `IPV6_V6ONLY` off) reports an IPv4 peer as the
//! v4-mapped `[::ffff:a.b.c.d]:port`, while a node bound to `0.0.0.0` sees the same peer
//! as `a.b.c.d:port`, and gossip may carry either. The engine keys members, links,
//! address challenges, frontiers and timers by address, so every address that enters it
//! (a datagram's source, a bootstrap peer, a gossiped or advertised address) is first
//! made canonical by [`canonical`]: v4-mapped addresses become IPv4, and the IPv6 flow
//! label (which says nothing about who the peer is) is cleared. The scope id of a
//! link-local address is kept: it names the interface the peer is reached on.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

/// Smallest MTU every IPv6 link carries (RFC 8200 §5). Datagrams of the default
/// `max_datagram_size` (1,200 bytes) fit it with the 40-byte IPv6 and 8-byte UDP headers.
pub const IPV6_MIN_MTU: usize = 1280;
/// IPv6 header bytes (the IPv4 header is 20 bytes without options).
pub const IPV6_HEADER: usize = 40;
/// UDP header bytes.
pub const UDP_HEADER: usize = 8;

/// The one form under which the engine knows the peer at `addr`: a v4-mapped IPv6
/// address becomes the IPv4 address it maps, and an IPv6 flow label is cleared.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None if v6.flowinfo() != 0 => {
                SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id()))
            }
            None => addr,
        },
    }
}

/// The canonical form of an IP address (see [`canonical`]).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    canonical(SocketAddr::new(ip, 0)).ip()
}

/// Whether `addr` could be a peer's address at all: a unicast IP (not unspecified, not
/// multicast or broadcast) and a port other than 0.
pub fn is_peer_addr(addr: &SocketAddr) -> bool {
    let ip = canonical_ip(addr.ip());
    let unicast = match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_multicast(),
    };
    unicast && addr.port() != 0
}

/// Checks that `host` is an IP address (IPv6 with or without brackets) or a
/// syntactically valid host name (RFC 1123 labels of letters, digits, `-` and `_`, at
/// most 63 bytes each and 253 in all, an optional final dot). Says why not.
pub fn check_host(host: &str) -> Result<(), String> {
    if parse_ip(host).is_some() {
        return Ok(());
    }
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err("a host name is at most 253 bytes".to_owned());
    }
    for label in name.split('.') {
        let valid_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty()
            || label.len() > 63
            || !valid_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "`{host}` is neither an IP address nor a valid host name"
            ));
        }
    }
    Ok(())
}

/// `host` as an IP address, if it is one (`[::1]` and `::1` both are).
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Splits `HOST:PORT` or `[IPV6]:PORT` into its host (brackets removed) and port. A bare
/// IPv6 address without a port is refused: its last group would be taken for one.
pub fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT or [IPV6]:PORT, got `{text}`"))?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| format!("unclosed `[` in `{text}`"))?,
        None if host.contains(':') => {
            return Err(format!(
                "an IPv6 address with a port is written in brackets: `[{host}]:{port}`"
            ))
        }
        None => host,
    };
    if host.is_empty() {
        return Err(format!("missing host in `{text}`"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0-65535)"))?;
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_addresses_become_v4_and_flow_labels_go() {
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:7000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.5:7000".parse().unwrap());
        let v4: SocketAddr = "10.0.0.5:7000".parse().unwrap();
        assert_eq!(canonical(v4), v4);
        let v6: SocketAddr = "[fd00::2]:7000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        let labelled = SocketAddr::V6(SocketAddrV6::new("fd00::2".parse().unwrap(), 7000, 9, 0));
        assert_eq!(canonical(labelled), v6);
        let scoped = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7000, 0, 3));
        assert_eq!(canonical(scoped), scoped, "the scope names the interface");
        // ::1 is not a mapped address (nor is the deprecated v4-compatible form).
        let loopback: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(canonical(loopback), loopback);
    }

    #[test]
    fn peer_addresses_are_unicast_with_a_port() {
        for good in ["10.0.0.5:7000", "[::1]:7000", "[::ffff:127.0.0.1]:1"] {
            assert!(is_peer_addr(&good.parse().unwrap()), "{good}");
        }
        for bad in [
            "0.0.0.0:7000",
            "[::]:7000",
            "10.0.0.5:0",
            "224.0.0.1:7000",
            "255.255.255.255:7000",
            "[ff02::1]:7000",
            "[::ffff:0.0.0.0]:7000",
        ] {
            assert!(!is_peer_addr(&bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn host_syntax() {
        for good in [
            "localhost",
            "seed.example",
            "seed-1.mesh.example.",
            "_srv.example",
            "10.0.0.5",
            "::1",
            "[::1]",
            "fd00::2",
        ] {
            assert!(check_host(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "bad host",
            "-lead.example",
            "trail-.example",
            "a..b",
            "h!",
            "[::1",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        assert!(check_host(&"a".repeat(64)).is_err());
        assert!(check_host(&["a"; 130].join(".")).is_err());
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(
            split_host_port("seed.example:7000").unwrap(),
            ("seed.example".into(), 7000)
        );
        assert_eq!(split_host_port("[::1]:7000").unwrap(), ("::1".into(), 7000));
        assert_eq!(
            split_host_port("10.0.0.5:0").unwrap(),
            ("10.0.0.5".into(), 0)
        );
        assert!(split_host_port("::1:7000")
            .unwrap_err()
            .contains("brackets"));
        assert!(split_host_port("seed.example").is_err());
        assert!(split_host_port(":7000").is_err());
        assert!(split_host_port("h:99999").is_err());
    }
}
