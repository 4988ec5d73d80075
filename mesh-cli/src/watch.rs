//! `watch PREFIX`: prints every change of the keys under a prefix, for as long as the
//! node runs.

use std::io::Write as _;

use mesh_core::{Change, Node};
use serde_json::json;

use crate::command::Format;

/// Starts printing the changes under `prefix` on standard output, one line each, from
/// the node's callback thread; returns the command's answer.
pub fn start(node: &Node, prefix: &str, format: Format) -> String {
    let tag = prefix.to_owned();
    node.watch(prefix, move |change: &Change<'_>| {
        let line = render(&tag, change, format);
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    })
    .keep();
    match format {
        Format::Plain => format!("watching {}", shown(prefix)),
        Format::Json => json!({"ok": true, "watch": prefix}).to_string(),
    }
}

/// One change as printed: `[watch sensor/] sensor/temp = 21 (sync)`, or a JSON line.
fn render(prefix: &str, change: &Change<'_>, format: Format) -> String {
    let op = change.origin.as_str();
    match (format, change.value) {
        (Format::Plain, Some(value)) => format!(
            "[watch {}] {} = {} ({op})",
            shown(prefix),
            change.key,
            value.to_json()
        ),
        (Format::Plain, None) => format!("[watch {}] {} deleted ({op})", shown(prefix), change.key),
        (Format::Json, value) => {
            let mut line = json!({"event": "watch", "prefix": prefix, "key": change.key, "op": op});
            match value {
                Some(value) => line["value"] = value.to_json_value(),
                None => line["deleted"] = json!(true),
            }
            line.to_string()
        }
    }
}

/// The prefix as the user would type it; the empty prefix (every key) as `""`.
fn shown(prefix: &str) -> String {
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        serde_json::Value::from(prefix).to_string()
    } else {
        prefix.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::{ChangeOrigin, Value};

    use super::*;

    #[test]
    fn changes_render_as_documented() {
        let value = Value::Int(21);
        let set = Change {
            key: "sensor/temp",
            value: Some(&value),
            origin: ChangeOrigin::Sync,
        };
        let deleted = Change {
            key: "my key",
            value: None,
            origin: ChangeOrigin::LocalDelete,
        };
        assert_eq!(
            render("sensor/", &set, Format::Plain),
            "[watch sensor/] sensor/temp = 21 (sync)"
        );
        assert_eq!(
            render("", &deleted, Format::Plain),
            "[watch \"\"] my key deleted (delete)"
        );
        let line: serde_json::Value =
            serde_json::from_str(&render("sensor/", &set, Format::Json)).unwrap();
        assert_eq!(
            line,
            json!({"event": "watch", "prefix": "sensor/", "key": "sensor/temp", "op": "sync", "value": 21})
        );
        let line: serde_json::Value =
            serde_json::from_str(&render("", &deleted, Format::Json)).unwrap();
        assert_eq!(line["deleted"], true);
    }
}
