use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::args::{normalize_gocryptfs_style, Cli, Cmd};
use cli::{commands, exit, report};

fn main() -> ExitCode {
    let args = normalize_gocryptfs_style(std::env::args_os());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE as u8
            } else {
                exit::OK as u8
            });
        }
    };
    let result = match &cli.command {
        Cmd::Init(a) => commands::init(a),
        Cmd::Export(a) => commands::export(a),
        Cmd::Speed(a) => cli::speed::run(a),
        Cmd::Completions { shell } => commands::completions(*shell),
        Cmd::Man { dir } => commands::man_pages(dir),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            report::error(&report::sanitize(&e.to_string()));
            exit::for_error(&e)
        }
    };
    ExitCode::from(code as u8)
}
