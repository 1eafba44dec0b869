//! Errors of the remote layer: one line naming the object (its URL) and what the
//! service said. Never a credential: messages are built from the service's error code
//! and text and from our own words, never from a request (which carries the signature)
//! or from the environment.

use std::fmt;

/// What went wrong, for the caller's decision (go on, count, stop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (or directory) does not exist.
    NotFound,
    /// The bucket does not exist. Fatal for a run.
    BucketMissing,
    /// Credentials missing, wrong or without permission. Fatal for a run.
    Auth,
    /// The service cannot be reached (connection refused, ssh failed, TLS). Fatal.
    Connect,
    /// Another run holds the lock on this location.
    Locked,
    /// A conditional write found the object already there.
    Exists,
    /// The upload was handed more or fewer bytes than announced (the source changed
    /// while it was read): nothing was stored under the key.
    SizeMismatch,
    /// Anything else the service or the transport reported (after retries).
    Other,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// The object's URL (`s3://bucket/prefix/key`), or the location's.
    pub what: String,
    pub msg: String,
}

impl Error {
    pub fn new(kind: ErrorKind, what: impl Into<String>, msg: impl Into<String>) -> Error {
        Error {
            kind,
            what: what.into(),
            msg: msg.into(),
        }
    }

    /// A missing bucket, failed authentication or an unreachable service ends the run:
    /// every other object would fail the same way.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::BucketMissing | ErrorKind::Auth | ErrorKind::Connect
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.msg)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
