//! See `mesh_core::harness::engine_case` for the input and the invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = mesh_core::harness::engine_from_bytes(data) {
        panic!("{failure}");
    }
});
