mod cli;
mod gocryptfs;
mod incremental;
mod interop_export;
mod tar;
mod tree;
mod tty;
mod util;
