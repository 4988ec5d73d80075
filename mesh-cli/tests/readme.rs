//! The README's configuration table states the core's real defaults.

use std::time::Duration;

use mesh_core::Config;

const README: &str = include_str!("../../README.md");

/// A duration as the README writes it: `10 s`, `0.5 s`, `10 ms`, `24 h`, `0`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if d.is_zero() {
        "0".to_owned()
    } else if secs >= 3600.0 && d.as_secs() % 3600 == 0 {
        format!("{} h", d.as_secs() / 3600)
    } else if secs >= 0.1 {
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A size as the README writes it: `16 MiB`, `1 KiB`, `1200 bytes`.
fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The default column of the table row whose first column is `setting`.
fn readme_default(setting: &str) -> String {
    let row = README
        .lines()
        .find(|line| line.starts_with(&format!("| {setting} |")))
        .unwrap_or_else(|| panic!("README.md has no configuration row for {setting}"));
    row.split('|').nth(2).unwrap().trim().to_owned()
}

#[test]
fn configuration_table_defaults_are_the_cores() {
    let c = Config::default();
    let rows = [
        ("`host`", format!("`{}`", c.host)),
        ("`port`", c.port.to_string()),
        ("`cluster`", format!("`{}`", c.cluster)),
        ("`sync_interval`", duration(c.sync_interval)),
        ("`heartbeat_interval`", duration(c.heartbeat_interval)),
        ("`peer_timeout`", duration(c.peer_timeout)),
        ("`max_retries`", c.max_retries.to_string()),
        ("`initial_rto`", duration(c.initial_rto)),
        (
            "`min_rto` / `max_rto`",
            format!("{} / {}", duration(c.min_rto), duration(c.max_rto)),
        ),
        ("`push_delay`", duration(c.push_delay)),
        ("`push_fanout`", c.push_fanout.to_string()),
        ("`max_datagram_size`", size(c.max_datagram_size)),
        ("`max_key_len`", size(c.max_key_len)),
        ("`max_value_size`", size(c.max_value_size)),
        ("`max_in_flight`", size(c.max_in_flight)),
        (
            "`compression`",
            if c.compression { "on" } else { "off" }.to_owned(),
        ),
        ("`max_reassembly`", size(c.max_reassembly)),
        ("`reassembly_timeout`", duration(c.reassembly_timeout)),
        ("`max_clock_drift`", duration(c.max_clock_drift)),
        ("`tombstone_grace`", duration(c.tombstone_grace)),
        ("`max_origins`", c.max_origins.to_string()),
        ("`max_probe_interval`", duration(c.max_probe_interval)),
        ("`max_peers`", c.max_peers.to_string()),
    ];
    for (setting, want) in rows {
        assert_eq!(readme_default(setting), want, "README default of {setting}");
    }
    assert!(
        c.seed.is_none(),
        "README says the seed is random by default"
    );
    assert_eq!(readme_default("`seed`"), "random");
}
