//! Building blocks of the `mesh-sync` command-line node and the `mesh-demo` program:
//! the interactive command language, argument parsers shared by both programs, and the
//! small statistics the demo reports.

pub mod args;
pub mod command;
pub mod dashboard;
pub mod http;
pub mod keyring;
pub mod logging;
pub mod remote;
pub mod stats;
pub mod watch;
