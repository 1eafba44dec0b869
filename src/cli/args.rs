//! The command line, defined once: `--help`, the man page and completions all come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "cryptbak",
    version,
    about = "Encrypted backups byte-identical to a gocryptfs -reverse view, without FUSE",
    long_about = "cryptbak writes what `gocryptfs -reverse` would show for a plaintext directory \
(AES-SIV content, EME-encrypted names, gocryptfs.diriv, long names, gocryptfs.conf) straight into a \
destination directory, using every core and no FUSE mount. A real gocryptfs mounts the result.",
    after_help = "Exit codes: 0 ok, 1 fatal error, 2 finished with per-file errors, 12 wrong password, \
23 config missing or invalid, 26 integrity errors, 64 usage error, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create SRC/.gocryptfs.reverse.conf (like `gocryptfs -init -reverse SRC`)
    Init(InitArgs),
    /// Write the encrypted reverse view of SRC into the directory DEST
    Export(ExportArgs),
    /// Measure encryption speed on this machine (like `gocryptfs -speed`)
    Speed(SpeedArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (cryptbak.1 and one per subcommand) into DIR
    #[command(hide = true)]
    Man {
        #[arg(default_value = "man")]
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct PasswordArgs {
    /// Read the password from the first line of FILE (repeatable: first lines are concatenated, as in gocryptfs)
    #[arg(long, value_name = "FILE")]
    pub passfile: Vec<PathBuf>,

    /// Run CMD and use the first line it prints as the password (split on spaces; repeat to pass arguments)
    #[arg(long, value_name = "CMD", conflicts_with = "passfile")]
    pub extpass: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(flatten)]
    pub password: PasswordArgs,

    /// Use this master key (64 hex digits) instead of the config's password; `stdin` reads it from standard input
    #[arg(long, value_name = "HEX|stdin", conflicts_with_all = ["passfile", "extpass"])]
    pub masterkey: Option<String>,

    /// Config file to use instead of SRC/.gocryptfs.reverse.conf (the view then shows no gocryptfs.conf)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub password: PasswordArgs,

    /// scrypt cost as log2(N), 10..=28; higher is slower to unlock and harder to brute-force
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u8).range(10..=28))]
    pub scryptn: u8,

    /// Encrypt names without per-directory IVs: no gocryptfs.diriv files, same name gives same ciphertext everywhere
    #[arg(long)]
    pub deterministic_names: bool,

    /// Do not encrypt file names (contents are still encrypted)
    #[arg(long, conflicts_with_all = ["deterministic_names", "longnamemax"])]
    pub plaintextnames: bool,

    /// Hash encrypted names longer than N characters (62..=255) into gocryptfs.longname.* files
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(62..=255))]
    pub longnamemax: Option<u8>,

    /// Write the config here instead of SRC/.gocryptfs.reverse.conf
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print less
    #[arg(short, long)]
    pub quiet: bool,

    /// The plaintext directory to back up
    pub src: PathBuf,
}

/// Which gocryptfs release's view to reproduce where releases differ.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    /// gocryptfs 2.3 and 2.4 (Debian 12, Ubuntu 22.04–24.04): virtual files keep their source's mtime
    #[value(name = "2.3")]
    V2_3,
    /// gocryptfs 2.5 and later: gocryptfs.diriv and .name files show mtime + 10 s
    #[value(name = "2.5")]
    V2_5,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub key: KeyArgs,

    /// Reproduce the view of this gocryptfs version where versions differ
    #[arg(long, value_enum, default_value = "2.3")]
    pub compat: Compat,

    /// Number of worker threads (default: one per core)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Show what would be written and deleted, change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Also re-encrypt files whose size and mtime match and compare the bytes
    #[arg(long)]
    pub checksum: bool,

    /// Keep destination entries that are no longer in the source
    #[arg(long)]
    pub no_delete: bool,

    /// Delete nothing (and say so) if more than N entries would be deleted
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,

    /// List every change, rsync --itemize-changes style, on stdout
    #[arg(short, long)]
    pub verbose: bool,

    /// Print changes, problems and the final summary as JSON lines on stdout
    #[arg(long)]
    pub json: bool,

    /// Print only errors
    #[arg(short, long)]
    pub quiet: bool,

    /// The plaintext directory to back up
    pub src: PathBuf,

    /// Where to write the encrypted view: created if missing; if it exists it must be empty
    /// or an earlier export with the same key, and is updated to exactly the current view
    pub dest: PathBuf,
}

#[derive(Args, Debug)]
pub struct SpeedArgs {
    /// Threads for the second column (default: one per core)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Seconds spent on each figure (split into rounds; the best round counts)
    #[arg(long, value_name = "S", default_value_t = 0.5)]
    pub seconds: f64,

    /// Rounds per figure
    #[arg(long, value_name = "N", default_value_t = 3, hide = true)]
    pub rounds: usize,

    /// Only the figures whose name contains TEXT (for profiling)
    #[arg(long, value_name = "TEXT", hide = true)]
    pub only: Option<String>,
}

/// gocryptfs's own single-dash spellings, accepted so existing scripts keep working.
const GOCRYPTFS_LONG_OPTIONS: &[&str] = &[
    "passfile",
    "extpass",
    "masterkey",
    "config",
    "scryptn",
    "deterministic-names",
    "plaintextnames",
    "longnamemax",
    "quiet",
];

/// Rewrite `-passfile x` / `-passfile=x` into `--passfile …`; everything else is untouched.
pub fn normalize_gocryptfs_style(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| {
            let Some(s) = a.to_str() else { return a };
            let Some(rest) = s.strip_prefix('-') else {
                return a;
            };
            if rest.starts_with('-') {
                return a;
            }
            let name = rest.split('=').next().unwrap_or(rest);
            if GOCRYPTFS_LONG_OPTIONS.contains(&name) {
                format!("-{s}").into()
            } else {
                a
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_dash_gocryptfs_options() {
        let args = [
            "cryptbak",
            "export",
            "-passfile",
            "pw",
            "-config=c",
            "-j",
            "2",
            "-q",
            "-",
            "d",
        ];
        let got = normalize_gocryptfs_style(args.iter().map(std::ffi::OsString::from));
        let want = [
            "cryptbak",
            "export",
            "--passfile",
            "pw",
            "--config=c",
            "-j",
            "2",
            "-q",
            "-",
            "d",
        ];
        assert_eq!(
            got,
            want.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        );
    }
}
