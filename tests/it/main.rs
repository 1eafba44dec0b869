mod cli;
mod exclude;
mod gocryptfs;
mod incremental;
mod interop_export;
mod tree;
mod tty;
mod util;
