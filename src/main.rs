use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::args::{normalize_gocryptfs_style, Cli, Cmd};
use cli::{commands, exit, report, restore};

fn main() -> ExitCode {
    // Before any key or password is in memory: no core dumps, no ptrace.
    cryptbak::fs::process::harden();
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
    if matches!(cli.command, Cmd::Export(_) | Cmd::Restore(_)) {
        stop_on_signals();
    }
    let result = match &cli.command {
        Cmd::Init(a) => commands::init(a),
        Cmd::Export(a) => cli::export::export(a),
        Cmd::Restore(a) => restore::restore(a),
        Cmd::Ls(a) => restore::ls(a),
        Cmd::Verify(a) => cli::verify::verify(a),
        Cmd::Info(a) => cli::inspect::info(a),
        Cmd::EncryptPath(a) => cli::inspect::encrypt_path(a),
        Cmd::DecryptPath(a) => cli::inspect::decrypt_path(a),
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

/// SIGINT and SIGTERM ask an export or restore to stop cleanly (exit 130); a second one ends the
/// process at once. Commands that do not check the flag keep the default behaviour.
fn stop_on_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = cryptbak::cancel::flag();
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit must see the flag before this signal sets it.
        let _ =
            signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
}
