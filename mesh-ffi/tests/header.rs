//! The committed `include/mesh_sync.h` must be exactly what cbindgen generates from this
//! crate now, so the header C programs compile against never drifts from the library.

use std::path::PathBuf;

const REGENERATE: &str = "MESH_UPDATE_HEADER=1 cargo test -p mesh-ffi --test header";

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("mesh-ffi/cbindgen.toml is readable and valid");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can parse mesh-ffi")
        .write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

#[test]
fn header_matches_cbindgen_output() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/mesh_sync.h");
    let generated = generate();
    if std::env::var_os("MESH_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("include/mesh_sync.h is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "include/mesh_sync.h is out of date with mesh-ffi (first difference at line \
             {line}); regenerate it with:\n    {REGENERATE}"
        );
    }
}

#[test]
fn header_declares_the_whole_api_with_its_docs() {
    let header = generate();
    for needle in [
        "#ifndef MESH_SYNC_H",
        "extern \"C\" {",
        "typedef struct mesh_node_t mesh_node_t;",
        "MESH_RESULT_OK = 0,",
        "MESH_RESULT_PANIC = 15,",
        "MESH_VALUE_TYPE_BYTES = 5,",
        "mesh_result mesh_node_new(const mesh_config_t *config, mesh_node_t **node_out);",
        "void mesh_node_free(mesh_node_t *node);",
        "typedef void (*mesh_state_change_callback)(void *user_data,",
        "const char *mesh_last_error_message(void);",
        "const char *mesh_version(void);",
    ] {
        assert!(
            header.contains(needle),
            "header lacks {needle:?}:\n{header}"
        );
    }
    // Every exported function carries its documentation into the header.
    let lines: Vec<&str> = header.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let is_function = line.starts_with("mesh_result ")
            || line.starts_with("void mesh_")
            || line.starts_with("const char *mesh_")
            || line.starts_with("bool mesh_")
            || line.starts_with("size_t mesh_");
        if is_function {
            assert!(
                i > 0 && lines[i - 1].trim_end().ends_with("*/"),
                "no documentation above {line:?}"
            );
        }
    }
}
