//! C ABI for mesh-sync.
