//! The command line, defined once: `--help`, the man page and completions all come from here.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use cryptbak::view::ViewVersion;

use super::password::MasterKeyArg;

#[derive(Parser, Debug)]
#[command(
    name = "cryptbak",
    version,
    // `cryptbak help X` would be a subcommand without a man page of its own; `--help` is
    // on every command.
    disable_help_subcommand = true,
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
    /// Write the encrypted reverse view of SRC into DEST (a directory, s3:// or sftp://), or as a tar stream (--tar)
    Export(ExportArgs),
    /// Decrypt a backup (directory, s3://, sftp:// or tar stream) back to plaintext in DEST, authenticating contents and names
    Restore(RestoreArgs),
    /// List a backup's decrypted names, sizes and times, without restoring anything
    Ls(LsArgs),
    /// Authenticate every block, name and symlink of a backup without writing plaintext; with --source, also compare it with the source
    Verify(VerifyArgs),
    /// Show a config's settings, scrypt cost, which program wrote it and which view export writes for it (no secrets; no password needed)
    Info(InfoArgs),
    /// Print the view path (ciphertext path) of a plaintext path, like gocryptfs's EncryptPath
    EncryptPath(EncryptPathArgs),
    /// Print the plaintext path of a path inside a backup, like gocryptfs's DecryptPath
    DecryptPath(DecryptPathArgs),
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
    pub masterkey: Option<MasterKeyArg>,

    /// Config file to use instead of SRC/.gocryptfs.reverse.conf (the view then shows no gocryptfs.conf)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub password: PasswordArgs,

    /// scrypt cost as log2(N), 10..=22 (22 needs 4 GiB and several seconds to unlock, the most cryptbak and restore accept); higher is slower to unlock and harder to brute-force
    #[arg(long, value_name = "N", default_value_t = cryptbak::format::config::DEFAULT_LOG_N, value_parser = clap::value_parser!(u8).range(cryptbak::format::config::MIN_LOG_N as i64..=cryptbak::format::config::MAX_LOG_N_INIT as i64))]
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

    /// Write the master key to FILE (mode 0400, never over an existing file) instead of printing it
    #[arg(long, value_name = "FILE")]
    pub masterkey_file: Option<PathBuf>,

    /// Print nothing, not even the master key
    #[arg(short, long)]
    pub quiet: bool,

    /// The plaintext directory to back up
    pub src: PathBuf,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A source directory (.gocryptfs.reverse.conf), a backup (gocryptfs.conf), or a config file
    pub path: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EncryptPathArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The plaintext directory (its .gocryptfs.reverse.conf gives the keys)
    pub src: PathBuf,
    /// Plaintext paths, relative to SRC (or absolute, inside SRC); each must exist
    #[arg(required = true, allow_hyphen_values = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(mut_arg("config", |a| a.help("The backup's config file [default: BACKUP/gocryptfs.conf]")))]
pub struct DecryptPathArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The backup directory (its gocryptfs.conf gives the keys; .name and diriv files are read from it)
    pub backup: PathBuf,
    /// Paths relative to BACKUP (view paths, as `ls` of the backup shows them)
    #[arg(required = true, allow_hyphen_values = true)]
    pub paths: Vec<PathBuf>,
}

/// Which gocryptfs release's view to reproduce where releases differ (FORMAT.md §21: only
/// the virtual files' times differ; the default is current gocryptfs).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    /// gocryptfs 2.3 and 2.4 (Debian 12, Ubuntu 22.04–24.04): gocryptfs.diriv and .name files show their source's mtime
    #[value(name = "2.3")]
    V2_3,
    /// gocryptfs 2.5 and later (Debian 13 and unstable, Arch, Fedora): gocryptfs.diriv and .name files show their source's mtime + 10 s
    #[value(name = "2.5")]
    V2_5,
}

/// Shown under `--compat` of every command that writes or recomputes a view.
const COMPAT_HELP: &str = "Which gocryptfs release's reverse view to reproduce where releases \
differ. Only the times of the virtual files differ: gocryptfs 2.5 and later show \
gocryptfs.diriv and gocryptfs.longname.*.name with their source's mtime + 10 s (so that rsync \
copies them again), gocryptfs 2.3 and 2.4 show the source's mtime unchanged. Names and \
contents are identical either way.\n\n\
The default, 2.5, is what current gocryptfs shows (Debian 13 and unstable, Arch, Fedora). \
Pick 2.3 to match a gocryptfs 2.3 or 2.4 reverse mount (Debian 12, Ubuntu 22.04 to 24.04), \
for example when DEST is a tree that was rsynced from such a mount and both are still in \
use. Switching either way is harmless: the next export rewrites only the virtual files \
(16 bytes per directory, plus one small file per long name), and rsync sends them once \
more. `cryptbak info` shows which release created a config.";

/// What goes into the backup. Flatten this into every command that exports a view, so
/// all of them select the same way.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Selecting what is backed up (see docs/exclude.md)")]
pub struct SelectArgs {
    /// Leave out PATH, relative to SRC and anchored there (gocryptfs -exclude/-e: the pattern "/PATH"; wildcards work, a leading slash matches nothing); repeatable
    #[arg(
        short = 'e',
        long = "exclude",
        value_name = "PATH",
        allow_hyphen_values = true
    )]
    pub exclude: Vec<String>,

    /// Leave out paths matching PATTERN, gitignore-like as in gocryptfs -exclude-wildcard/-ew: no slash matches at any depth, "dir/" empties dir, "!" re-includes, the last match wins, "?" is literal; repeatable, never split on commas
    #[arg(
        long = "exclude-wildcard",
        visible_alias = "ew",
        value_name = "PATTERN",
        allow_hyphen_values = true
    )]
    pub exclude_wildcard: Vec<String>,

    /// Read --exclude-wildcard patterns from FILE, one per line ("#" starts a comment); repeatable
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,

    /// Show directories on other filesystems than SRC as empty directories (gocryptfs -one-file-system)
    #[arg(short = 'x', long)]
    pub one_file_system: bool,

    /// Leave out the contents of directories holding a valid CACHEDIR.TAG, keeping the directory and the tag (like tar --exclude-caches)
    #[arg(long)]
    pub exclude_caches: bool,

    /// Leave out the contents of directories holding an entry named NAME, keeping the directory and NAME (like tar --exclude-tag); repeatable
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<std::ffi::OsString>,
}

/// The long help of export's DEST.
const DEST_HELP: &str = "Where to write the encrypted view. Created if missing; if it \
exists it must be empty or an earlier export with the same key, and is updated to exactly the \
current view (new and changed entries written, vanished ones deleted).\n\n\
A directory, or a remote location written directly, without a local copy:\n\
  s3://BUCKET/PREFIX   AWS S3 or any S3-compatible service. Credentials, region and endpoint \
come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, \
AWS_ENDPOINT_URL (path-style addressing then) or ~/.aws/credentials and ~/.aws/config \
(AWS_PROFILE). One object per file, a zero-length PREFIX/DIR/ marker per directory, mtime, \
mode and owner in rclone's metadata keys: `rclone copy --metadata --links` of the prefix \
gives the same tree, which gocryptfs mounts.\n\
  sftp://[USER@]HOST[:PORT]/PATH   Over the system ssh (your ssh config, keys and agent; \
CRYPTBAK_SSH replaces the ssh command). The same tree as a directory export, modes and \
whole-second mtimes, no owners.\n\
Incremental from one listing (S3: plus one HEAD per object for its mtime), --transfers \
uploads at once, a lock object .cryptbak-lock while it runs. See docs/remote.md.";

#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("output").required(true).args(["dest", "tar"])),
    override_usage = "cryptbak export [OPTIONS] <SRC> <DEST>\n       cryptbak export [OPTIONS] --tar <FILE> <SRC>"
)]
pub struct ExportArgs {
    #[command(flatten)]
    pub key: KeyArgs,

    /// Reproduce the view of this gocryptfs release where releases differ (2.5: 2.5 and later; 2.3: 2.3 and 2.4)
    #[arg(long, value_enum, default_value = ViewVersion::DEFAULT.name(), long_help = COMPAT_HELP)]
    pub compat: Compat,

    /// Number of worker threads (default: one per core)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// With an s3:// or sftp:// DEST: objects uploaded at once [default: 8]; the worker threads grow to at least N
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub transfers: Option<u16>,

    /// With an s3:// or sftp:// DEST: first remove the lock object a run that died (kill -9, a reboot) left behind; make sure no other export into DEST is running
    #[arg(long)]
    pub break_lock: bool,

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

    /// Do not flush DEST's filesystem to disk (syncfs) before deleting stale entries and before reporting success; faster on slow disks, but a power cut right after the run may lose what it wrote (directories only)
    #[arg(long)]
    pub no_sync: bool,

    /// List every change, rsync --itemize-changes style, on stdout
    #[arg(short, long)]
    pub verbose: bool,

    /// Print changes, problems and the final summary as JSON lines on stdout
    #[arg(long)]
    pub json: bool,

    /// Do not show the progress line (shown only when stderr is a terminal; with a total
    /// and an ETA once the tree is counted)
    #[arg(long)]
    pub no_progress: bool,

    /// Print only errors
    #[arg(short, long)]
    pub quiet: bool,

    /// The plaintext directory to back up
    pub src: PathBuf,

    /// Where to write the encrypted view: a directory, s3://BUCKET/PREFIX or
    /// sftp://[USER@]HOST[:PORT]/PATH. Created if missing; if it exists it must be empty or
    /// an earlier export with the same key, and is updated to exactly the current view
    #[arg(long_help = DEST_HELP)]
    pub dest: Option<PathBuf>,

    /// Write the encrypted view as one tar archive to FILE (`-` for standard output) instead of into DEST
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["dry_run", "checksum", "no_delete", "max_delete", "no_sync", "verbose", "json", "transfers", "break_lock"],
        long_help = "Write the encrypted view as one POSIX (pax) tar archive to FILE, or to standard \
output with `-`, instead of into a directory DEST; nothing is stored anywhere else. Extracting it \
(GNU tar or bsdtar, as root) gives exactly the tree `cryptbak export SRC DEST` writes, and a plain \
gocryptfs mounts that tree. The archive is deterministic: the same tree gives the same bytes, \
whatever -j. Example: cryptbak export --passfile pw --tar - /home | ssh host 'cat > home.tar'. \
A FILE is written under a temporary name and renamed when complete. Standard output must not be \
a terminal. If the reader goes away (broken pipe), cryptbak stops with exit code 1: the archive \
is incomplete."
    )]
    pub tar: Option<PathBuf>,

    // Last: its help heading would otherwise also cover the options after it.
    #[command(flatten)]
    pub select: SelectArgs,
}

/// Key options of commands that read a backup (restore, ls).
#[derive(Args, Debug)]
pub struct BackupKeyArgs {
    #[command(flatten)]
    pub password: PasswordArgs,

    /// Use this master key (64 hex digits) instead of the config's password; `stdin` reads it from standard input. Without a config, gocryptfs's defaults are assumed and the content cipher is detected (see --aessiv/--gcm)
    #[arg(long, value_name = "HEX|stdin", conflicts_with_all = ["passfile", "extpass"])]
    pub masterkey: Option<MasterKeyArg>,

    /// The backup's config file [default: BACKUP/gocryptfs.conf; with --tar, the stream's gocryptfs.conf]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// With --masterkey and no config: the content is AES-SIV (reverse mode, or forward mode made with -aessiv)
    #[arg(long, conflicts_with = "gcm")]
    pub aessiv: bool,

    /// With --masterkey and no config: the content is AES-256-GCM (forward-mode gocryptfs's default)
    #[arg(long)]
    pub gcm: bool,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Decrypt a backup back to plaintext in DEST: a cryptbak export, a copy of a gocryptfs \
-reverse mount (cp -a, rsync -a with or without -H, tar), a forward-mode gocryptfs directory \
(AES-GCM, AES-SIV or XChaCha20-Poly1305), a tar stream of any of them, or an s3:// or sftp:// \
location that cryptbak export wrote (or rclone copied an export to): read with one listing and \
ranged GETs, several files at a time, nothing stored locally but DEST. Every block is \
authenticated before its plaintext appears under its real name; nothing is written outside DEST.\n\n\
The gocryptfs format authenticates contents, names and symlink targets, not owners, modes, times \
or file types. So setuid/setgid bits of files are dropped and device nodes are not created unless \
asked for (--keep-setuid, --devices); each one is counted in the summary and named with -v. As root, \
owners are restored (as tar does).",
    after_help = "Exit codes: 0 everything restored, 2 some entries could not be restored, 12 wrong \
password, 23 config missing or invalid, 26 integrity errors (tampered or damaged backup), 1 other \
fatal errors, 64 usage errors, 130 interrupted."
)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub key: BackupKeyArgs,

    #[command(flatten)]
    pub remote: ReadTransferArgs,

    /// BACKUP is a tar stream of a backup (a file, or - for standard input), read in one pass
    #[arg(long)]
    pub tar: bool,

    /// Restore only this plaintext path of the backup (file or directory, e.g. Documents/taxes); it keeps its place below DEST
    #[arg(long, value_name = "PATH")]
    pub path: Option<std::ffi::OsString>,

    /// Restore into a DEST that is not empty; existing entries are never overwritten (each is reported)
    #[arg(long)]
    pub force: bool,

    /// Keep files that fail authentication as NAME.corrupt (blocks that fail are zeroed) instead of leaving them out
    #[arg(long)]
    pub keep_corrupt: bool,

    /// The backup was made by cryptbak export or gocryptfs -reverse: require every IV to match its path, even where auto-detection cannot tell (detects moved or swapped files)
    #[arg(long)]
    pub reverse: bool,

    /// Keep the setuid and setgid bits of files (dropped by default: the format does not authenticate modes, so anyone with write access to the backup storage can set them)
    #[arg(long)]
    pub keep_setuid: bool,

    /// Create device nodes (skipped by default: the format does not authenticate file types or device numbers)
    #[arg(long)]
    pub devices: bool,

    /// Number of worker threads (default: one per core)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Name each entry left out by the metadata policy (setuid bits, device nodes) and each hard link split by a copy tool that was rejoined
    #[arg(short, long)]
    pub verbose: bool,

    /// Print only problems
    #[arg(short, long)]
    pub quiet: bool,

    /// Print the final summary as a JSON object on stdout
    #[arg(long)]
    pub json: bool,

    /// Do not show the progress line (shown only when stderr is a terminal; with a total
    /// and an ETA once the tree is counted)
    #[arg(long)]
    pub no_progress: bool,

    /// The backup: a ciphertext directory, an s3://BUCKET/PREFIX or sftp://[USER@]HOST[:PORT]/PATH location (as for export), or with --tar a tar file or -
    pub backup: PathBuf,

    /// Where to restore to (created if missing; must be empty unless --force)
    pub dest: PathBuf,
}

/// The parallelism of the commands that read a remote BACKUP.
#[derive(Args, Debug)]
pub struct ReadTransferArgs {
    /// With an s3:// or sftp:// BACKUP: objects read at once (ranged GETs; metadata HEADs twice as many) [default: 8]; the worker threads grow to at least N
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub transfers: Option<u16>,
}

#[derive(Args, Debug)]
#[command(
    long_about = "List a backup's entries under their decrypted names, with modes, owners, sizes and \
mtimes. Of a backup directory, only names and symlink targets are decrypted (sizes come from the \
ciphertext sizes; contents are not read: use verify). With --tar, the stream is read whole and \
authenticated as a restore would, nothing written; the sizes are then the plaintext's."
)]
pub struct LsArgs {
    #[command(flatten)]
    pub key: BackupKeyArgs,

    #[command(flatten)]
    pub remote: ReadTransferArgs,

    /// List directories recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// BACKUP is a tar stream of a backup (a file, or - for standard input)
    #[arg(long)]
    pub tar: bool,

    /// The backup directory, an s3:// or sftp:// location, or with --tar a tar file or -
    pub backup: PathBuf,

    /// Plaintext path inside the backup to list [default: the root]
    pub path: Option<std::ffi::OsString>,
}

#[derive(Args, Debug)]
#[command(
    long_about = "Check a backup directory without writing any plaintext anywhere: every block of every \
file, every name, every long-name .name file and every symlink target is authenticated (the \
gocryptfs -fsck that reverse-made trees lack). For backups made by cryptbak export or copied from a \
gocryptfs -reverse mount, the IVs stored in each gocryptfs.diriv, file header and symlink are also \
checked against their paths, which catches files that were moved or swapped with one another. \
verify is a restore that writes nothing: it reaches the same verdict as restore.\n\n\
What is authenticated: file contents, names and symlink targets, and in reverse-made backups each \
entry's place in the tree. What is not (the gocryptfs format has no way to): owners, modes, times \
and file types. A restore therefore drops setuid/setgid bits and skips device nodes unless asked \
(restore --keep-setuid, --devices); verify counts them.\n\n\
With --source SRC, the source is also encrypted again (nothing is written) and compared with the \
backup byte for byte, like rclone cryptcheck: every difference is printed on stdout as one itemized \
line, as `cryptbak export -n` shows it (>f+++++++++ missing from the backup, >fcs...... different \
content, *deleting only in the backup, .f..t...... metadata only). The keys then come from \
SRC/.gocryptfs.reverse.conf (or --config, --masterkey), as for export; pass the same selection \
options and --compat as the export that made the backup.",
    after_help = "Exit codes: 0 everything authenticates (and matches SRC), 2 some entries could not be \
read or the backup does not match SRC, 12 wrong password, 23 config missing or invalid, 26 integrity \
errors (tampered or damaged backup)."
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub key: BackupKeyArgs,

    #[command(flatten)]
    pub remote: ReadTransferArgs,

    /// Also encrypt SRC again and compare it with the backup byte for byte (keys from SRC/.gocryptfs.reverse.conf unless --config or --masterkey)
    #[arg(long, value_name = "SRC")]
    pub source: Option<PathBuf>,

    /// With --source: reproduce the view of this gocryptfs release (as given to export)
    #[arg(
        long,
        value_enum,
        default_value = ViewVersion::DEFAULT.name(),
        requires = "source",
        long_help = COMPAT_HELP
    )]
    pub compat: Compat,

    /// The backup was made by cryptbak export or gocryptfs -reverse: require every IV to match its path, even where auto-detection cannot tell (implied by --source)
    #[arg(long)]
    pub reverse: bool,

    /// BACKUP is a tar stream of a backup (a file, or - for standard input), read in one pass
    #[arg(long, conflicts_with = "source")]
    pub tar: bool,

    /// Number of worker threads (default: one per core)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Name each entry a restore would leave out by its metadata policy (setuid bits, device nodes), and each hard link split by a copy tool
    #[arg(short, long)]
    pub verbose: bool,

    /// Print a JSON summary object on stdout (problems stay on stderr)
    #[arg(long)]
    pub json: bool,

    /// Print only problems and differences, no summary
    #[arg(short, long)]
    pub quiet: bool,

    /// The backup: a directory (a cryptbak export, a copy of a gocryptfs -reverse mount, or a forward-mode gocryptfs directory), an s3:// or sftp:// location, or with --tar a tar file or -
    pub backup: PathBuf,

    // Last: its help heading would otherwise also cover the options after it. Only used
    // with --source: the selection options the backup was exported with.
    #[command(flatten)]
    pub select: SelectArgs,
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
    "aessiv",
    // -e stays a short option; -ew must not become `-e w`.
    "exclude",
    "exclude-wildcard",
    "ew",
    "exclude-from",
    "one-file-system",
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

    fn parse(args: &[&str]) -> Cli {
        let args = normalize_gocryptfs_style(args.iter().map(std::ffi::OsString::from));
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn exclude_options_in_gocryptfs_spelling() {
        let cli = parse(&[
            "cryptbak",
            "export",
            "-exclude",
            "a",
            "-e",
            "b",
            "-e=c",
            "-ew",
            "d,e",
            "-exclude-wildcard=f",
            "--ew",
            "-g",
            "-exclude-from",
            "list",
            "-one-file-system",
            "src",
            "dest",
        ]);
        let Cmd::Export(a) = cli.command else {
            panic!("not export")
        };
        // Every value is kept, in order, and none is split on commas (gocryptfs 2.3
        // keeps only the values of the spelling used last and splits on commas).
        assert_eq!(a.select.exclude, ["a", "b", "c"]);
        assert_eq!(a.select.exclude_wildcard, ["d,e", "f", "-g"]);
        assert_eq!(a.select.exclude_from, [PathBuf::from("list")]);
        assert!(a.select.one_file_system);
        assert!(!a.select.exclude_caches);
    }

    #[test]
    fn exclude_options_in_long_spelling() {
        let cli = parse(&[
            "cryptbak",
            "export",
            "--exclude",
            "a",
            "--exclude-wildcard",
            "b",
            "-x",
            "--exclude-caches",
            "--exclude-if-present",
            ".nobackup",
            "--exclude-if-present",
            "x",
            "src",
            "dest",
        ]);
        let Cmd::Export(a) = cli.command else {
            panic!("not export")
        };
        assert_eq!(a.select.exclude, ["a"]);
        assert_eq!(a.select.exclude_wildcard, ["b"]);
        assert!(a.select.one_file_system && a.select.exclude_caches);
        assert_eq!(a.select.exclude_if_present, [".nobackup", "x"]);
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
