//! Where the password or master key comes from, gocryptfs-style: a terminal prompt
//! without echo, `--passfile`, `--extpass`, or `--masterkey`.
//!
//! Every buffer that holds a password or key hex is `Zeroizing` and allocated at its
//! final size before it is filled, so no reallocation leaves a copy in freed memory.

use std::fs;
use std::io::{IsTerminal, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cryptbak::format::keys::MasterKey;
use cryptbak::{Error, Result};
use zeroize::Zeroizing;

/// gocryptfs refuses longer passwords; so do we, for files made for it.
const MAX_PASSWORD_LEN: usize = 2048;

/// A password: wiped on drop; no `Debug`, `Display` or `Clone`.
pub struct Password(Zeroizing<Vec<u8>>);

impl Deref for Password {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Password) -> bool {
        self.0[..] == other.0[..]
    }
}

/// The value of `--masterkey` (`HEX` or `stdin`) as clap hands it over: wiped on drop,
/// and its `Debug` (the argument structs derive it) shows no digits.
#[derive(Clone)]
pub struct MasterKeyArg(Zeroizing<String>);

impl From<String> for MasterKeyArg {
    fn from(s: String) -> Self {
        MasterKeyArg(Zeroizing::new(s))
    }
}

impl std::fmt::Debug for MasterKeyArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeyArg(<redacted>)")
    }
}

impl MasterKeyArg {
    fn is_stdin(&self) -> bool {
        *self.0 == "stdin" || *self.0 == "-"
    }
}

/// How to get the password (not the master key).
pub enum PasswordSource {
    Prompt { confirm: bool },
    Files(Vec<PathBuf>),
    Command(Vec<String>),
}

/// The first line of some bytes, as gocryptfs takes it; warns about anything after it.
fn first_line(bytes: &[u8], what: &Path, warn: &mut dyn FnMut(String)) -> Result<Password> {
    let (line, rest) = match bytes.iter().position(|&c| c == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    if !rest.is_empty() {
        warn(format!(
            "{}: only the first line is used as the password, the rest is ignored",
            what.display()
        ));
    }
    if line.is_empty() {
        return Err(Error::invalid(what, "the password is empty"));
    }
    if line.len() > MAX_PASSWORD_LEN {
        return Err(Error::invalid(
            what,
            format!("the password is longer than {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(Password(Zeroizing::new(line.to_vec())))
}

impl PasswordSource {
    pub fn read(&self, warn: &mut dyn FnMut(String)) -> Result<Password> {
        match self {
            PasswordSource::Files(files) => {
                // Several passfiles are concatenated, as gocryptfs does.
                let mut lines = Vec::with_capacity(files.len());
                for f in files {
                    let bytes = Zeroizing::new(fs::read(f).map_err(|e| Error::io(f, e))?);
                    lines.push(first_line(&bytes, f, warn)?);
                }
                let mut pw =
                    Zeroizing::new(Vec::with_capacity(lines.iter().map(|l| l.len()).sum()));
                for l in &lines {
                    pw.extend_from_slice(l);
                }
                Ok(Password(pw))
            }
            PasswordSource::Command(argv) => {
                let argv: Vec<String> = if argv.len() == 1 {
                    argv[0].split_whitespace().map(str::to_string).collect()
                } else {
                    argv.clone()
                };
                let shown = Path::new(argv.first().map(String::as_str).unwrap_or("--extpass"));
                if argv.is_empty() {
                    return Err(Error::Usage("--extpass: empty command".into()));
                }
                let mut child = Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::inherit())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| Error::io(shown, e))?;
                // Read at most one byte more than the longest password and its newline into
                // a buffer that never grows; drain the rest so the program can finish.
                let limit = MAX_PASSWORD_LEN + 2;
                let mut stdout = Zeroizing::new(Vec::with_capacity(limit));
                let mut pipe = child.stdout.take().expect("stdout is piped");
                let read = (&mut pipe).take(limit as u64).read_to_end(&mut stdout);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                drop(pipe);
                let status = child.wait().map_err(|e| Error::io(shown, e))?;
                read.map_err(|e| Error::io(shown, e))?;
                if !status.success() {
                    return Err(Error::invalid(
                        shown,
                        format!("--extpass program failed ({status})"),
                    ));
                }
                // A program's output usually ends in a newline; only the first line counts.
                let line_end = stdout
                    .iter()
                    .position(|&c| c == b'\n')
                    .unwrap_or(stdout.len());
                first_line(&stdout[..line_end], shown, warn)
            }
            PasswordSource::Prompt { confirm } => {
                if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
                    return Err(Error::Usage(
                        "no password given and no terminal to ask on: use --passfile, --extpass or --masterkey".into(),
                    ));
                }
                let pw = prompt("Password: ")?;
                if *confirm && prompt("Repeat: ")? != pw {
                    return Err(Error::Usage("passwords do not match".into()));
                }
                first_line(&pw, Path::new("password"), warn)
            }
        }
    }
}

fn prompt(text: &str) -> Result<Password> {
    // rpassword reads into its own wiping buffer; the String it returns is wiped here.
    let s = Zeroizing::new(rpassword::prompt_password(text).map_err(|e| Error::io("/dev/tty", e))?);
    Ok(Password(Zeroizing::new(s.as_bytes().to_vec())))
}

/// The longest line `--masterkey=stdin` reads: 64 digits, 7 dashes, spaces, CR LF.
const MAX_KEY_LINE: usize = 256;

/// One line from file descriptor 0, read a byte at a time straight from the descriptor:
/// std's `Stdin` would keep the key in its buffer for the life of the process, and
/// nothing after the newline is consumed (a `--tar -` stream may follow).
fn read_key_line() -> Result<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_KEY_LINE));
    let mut b = Zeroizing::new([0u8; 1]);
    while line.len() < MAX_KEY_LINE {
        match rustix::io::read(rustix::stdio::stdin(), &mut b[..]) {
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => line.push(b[0]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("stdin", e.into())),
        }
    }
    Ok(line)
}

/// `--masterkey HEX` or `--masterkey stdin`.
pub fn read_master_key(arg: &MasterKeyArg, warn: &mut dyn FnMut(String)) -> Result<MasterKey> {
    let bad = || Error::Usage("--masterkey: expected 64 hex digits (dashes allowed)".into());
    if arg.is_stdin() {
        let line = read_key_line()?;
        let hex = std::str::from_utf8(&line).map_err(|_| bad())?;
        MasterKey::from_hex(hex).ok_or_else(bad)
    } else {
        warn("a master key on the command line is visible to other users in `ps`; prefer --masterkey=stdin".into());
        MasterKey::from_hex(&arg.0).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{normalize_gocryptfs_style, Cli};
    use clap::Parser;

    use cryptbak::implements;

    #[test]
    fn password_has_no_debug_display_or_clone() {
        assert!(
            implements!(Zeroizing<Vec<u8>>: std::fmt::Debug),
            "probe broken"
        );
        assert!(!implements!(Password: std::fmt::Debug));
        assert!(!implements!(Password: std::fmt::Display));
        assert!(!implements!(Password: Clone));
        assert!(!implements!(MasterKeyArg: std::fmt::Display));
    }

    #[test]
    fn debug_of_the_parsed_command_line_hides_the_master_key() {
        let key = "0123456789abcdef".repeat(4);
        for spelling in [vec!["--masterkey", &key], vec!["-masterkey", &key]] {
            let mut argv = vec!["cryptbak", "export"];
            argv.extend(spelling);
            argv.extend(["src", "dest"]);
            let args = normalize_gocryptfs_style(argv.iter().map(std::ffi::OsString::from));
            let cli = Cli::try_parse_from(args).unwrap();
            let shown = format!("{cli:?} {cli:#?}");
            assert!(shown.contains("redacted"), "{shown}");
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
        }
    }

    #[test]
    fn passfile_lines_concatenate_and_warn() {
        let d = std::env::temp_dir().join(format!("cryptbak-pw-test-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let (a, b) = (d.join("a"), d.join("b"));
        fs::write(&a, b"abc\nS3cond-line").unwrap();
        fs::write(&b, b"def").unwrap();
        let mut warnings = Vec::new();
        let pw = PasswordSource::Files(vec![a, b])
            .read(&mut |w| warnings.push(w))
            .unwrap();
        assert_eq!(&pw[..], b"abcdef");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(!warnings[0].contains("S3cond"), "{warnings:?}");
        fs::remove_dir_all(&d).unwrap();
    }
}
