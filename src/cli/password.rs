//! Where the password or master key comes from, gocryptfs-style: a terminal prompt
//! without echo, `--passfile`, `--extpass`, or `--masterkey`.

use std::fs;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cryptbak::keys::MasterKey;
use cryptbak::{Error, Result};
use zeroize::Zeroizing;

/// gocryptfs refuses longer passwords; so do we, for files made for it.
const MAX_PASSWORD_LEN: usize = 2048;

pub type Password = Zeroizing<Vec<u8>>;

/// How to get the password (not the master key).
pub enum PasswordSource {
    Prompt { confirm: bool },
    Files(Vec<PathBuf>),
    Command(Vec<String>),
}

/// The first line of some bytes, as gocryptfs takes it; warns about anything after it.
fn first_line(bytes: &[u8], what: &Path, warn: &mut dyn FnMut(String)) -> Result<Password> {
    let bytes = Zeroizing::new(bytes.to_vec());
    let (line, rest) = match bytes.iter().position(|&c| c == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&bytes[..], &[][..]),
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
    Ok(Zeroizing::new(line.to_vec()))
}

impl PasswordSource {
    pub fn read(&self, warn: &mut dyn FnMut(String)) -> Result<Password> {
        match self {
            PasswordSource::Files(files) => {
                // Several passfiles are concatenated, as gocryptfs does.
                let mut pw = Zeroizing::new(Vec::new());
                for f in files {
                    let bytes = Zeroizing::new(fs::read(f).map_err(|e| Error::io(f, e))?);
                    pw.extend_from_slice(&first_line(&bytes, f, warn)?);
                }
                Ok(pw)
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
                let out = Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::inherit())
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|e| Error::io(shown, e))?;
                let stdout = Zeroizing::new(out.stdout);
                if !out.status.success() {
                    return Err(Error::invalid(
                        shown,
                        format!("--extpass program failed ({})", out.status),
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
    let s = Zeroizing::new(rpassword::prompt_password(text).map_err(|e| Error::io("/dev/tty", e))?);
    Ok(Zeroizing::new(s.as_bytes().to_vec()))
}

/// `--masterkey HEX` or `--masterkey stdin`.
pub fn read_master_key(arg: &str, warn: &mut dyn FnMut(String)) -> Result<MasterKey> {
    let hex: Zeroizing<String> = if arg == "stdin" || arg == "-" {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("stdin", e))?;
        line
    } else {
        warn("a master key on the command line is visible to other users in `ps`; prefer --masterkey=stdin".into());
        Zeroizing::new(arg.to_string())
    };
    MasterKey::from_hex(&hex)
        .ok_or_else(|| Error::Usage("--masterkey: expected 64 hex digits (dashes allowed)".into()))
}
