//! Keyring files of `mesh-sync --keyring FILE`: one base64 key per line, the first the
//! primary; blank lines and `#` comments ignored. Like ssh with private keys, a file
//! that group or others may read or write is refused: the keys are the mesh's secret.

use std::path::Path;

use mesh_core::Key;

/// Reads the keys of the keyring file at `path`, checking its permissions first.
pub fn read(path: &Path) -> Result<Vec<Key>, String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read keyring {shown}: {e}"))?;
    check_private(path, &metadata)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read keyring {shown}: {e}"))?;
    parse(&text).map_err(|e| format!("invalid keyring {shown}: {e}"))
}

#[cfg(unix)]
pub(crate) fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "keyring {} has permissions {mode:04o}: it must not be readable or writable by \
             group or others; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// The keys of a keyring file's text, in order.
pub fn parse(text: &str) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = Key::from_base64(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err("no key in it (one base64 key per line)".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_order_kept() {
        let a = Key::from_bytes(&[1; 32]).unwrap();
        let b = Key::from_bytes(&[2; 32]).unwrap();
        let text = format!("# mesh keys\n\n{}\n  {}  \n", a.to_base64(), b.to_base64());
        assert_eq!(parse(&text).unwrap(), [a, b]);
    }

    #[test]
    fn bad_lines_and_empty_files_are_explained() {
        assert!(parse("# nothing\n").unwrap_err().contains("no key"));
        let err = parse("\nnot-a-key\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
