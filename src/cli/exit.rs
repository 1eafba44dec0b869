//! Exit codes. gocryptfs's numbers are reused where gocryptfs has one, so scripts that
//! check them keep working.

use cryptbak::Error;

pub const OK: i32 = 0;
/// Something went wrong before or outside any single file.
pub const FATAL: i32 = 1;
/// The run finished, but some entries could not be processed (see the messages).
pub const PARTIAL: i32 = 2;
/// gocryptfs `exitcodes.PasswordIncorrect`.
pub const WRONG_PASSWORD: i32 = 12;
/// gocryptfs `exitcodes.LoadConf`: the config is missing, unreadable or invalid.
pub const CONFIG: i32 = 23;
/// gocryptfs `exitcodes.FsckErrors`: authentication failures were found.
pub const INTEGRITY: i32 = 26;
/// BSD `EX_USAGE`: the command line is wrong.
pub const USAGE: i32 = 64;
pub const INTERRUPTED: i32 = 130;

pub fn for_error(e: &Error) -> i32 {
    match e {
        Error::WrongPassword { .. } => WRONG_PASSWORD,
        Error::ConfigUnreadable { .. }
        | Error::ConfigInvalid { .. }
        | Error::ConfigUnsupported { .. } => CONFIG,
        Error::Integrity { .. } => INTEGRITY,
        Error::Usage(_) => USAGE,
        Error::Interrupted | Error::RestoreInterrupted => INTERRUPTED,
        Error::Io { .. }
        | Error::Invalid { .. }
        | Error::ConfigExists { .. }
        | Error::Remote(_) => FATAL,
    }
}
