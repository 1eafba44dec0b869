//! Encrypting one source file into a destination writer, and noticing when the file
//! changed while it was read.
//!
//! Exactly the listed plaintext size is read, never more: a file that grew (or a device
//! someone swapped in) cannot make the output larger than the plan says. Whether the
//! file changed is judged on the open handle: fewer bytes than listed, a byte beyond
//! them, or a size or mtime that differs from the listing afterwards.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::format::content::{ContentCipher, FileEncryptor, FileIvs};
use crate::fs::Dir;
use crate::view::{Entry, Payload};

/// What reading a source file gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Plaintext bytes read (at most the listed size).
    pub read: u64,
    /// The file had more bytes than listed.
    pub grew: bool,
    /// Its size or mtime differ from the listing after the read.
    pub changed: bool,
    /// A read error ended the data early.
    pub error: Option<io::Error>,
}

impl Outcome {
    /// Whether what was read is exactly the file the listing saw.
    pub fn is_clean(&self, plain_size: u64) -> bool {
        self.error.is_none() && !self.grew && !self.changed && self.read == plain_size
    }

    /// A message for a file that did not read cleanly; `kept` says what the backup
    /// holds instead.
    pub fn problem(&self, plain_size: u64, kept: &str) -> String {
        if let Some(e) = &self.error {
            return format!(
                "read error after {} of {plain_size} bytes: {}; {kept}",
                self.read,
                crate::error::in_words(e)
            );
        }
        if self.grew {
            format!("file grew while being read (it had {plain_size} bytes when listed); {kept}")
        } else if self.read < plain_size {
            format!(
                "file shrank while being read ({plain_size} bytes when listed, {} read); {kept}",
                self.read
            )
        } else {
            format!("file changed as we read it; {kept}")
        }
    }
}

/// Remembers whether an error came from the destination, so that a full disk (fatal
/// for a stream, the sink's to name) is told from an unreadable source (the entry's).
pub struct WatchedWriter<'a> {
    pub inner: &'a mut dyn Write,
    pub failed: Option<io::ErrorKind>,
}

impl Write for WatchedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::cancel::io_check()?;
        let n = self
            .inner
            .write(buf)
            .inspect_err(|e| self.failed = Some(e.kind()))?;
        crate::meter::add(n);
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        crate::cancel::io_check()?;
        self.inner
            .write_all(buf)
            .inspect_err(|e| self.failed = Some(e.kind()))?;
        crate::meter::add(buf.len());
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|e| self.failed = Some(e.kind()))
    }
}

/// Encrypt the regular file `e`, open as `file` from its directory `src`, into `out`.
/// Errors writing `out` and a stop request are returned as errors; everything about the
/// source is in the outcome.
pub fn encrypt(
    enc: &mut FileEncryptor,
    src: &Dir,
    e: &Entry,
    file: &mut File,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let Payload::File {
        plain_size,
        iv_path,
    } = &e.payload
    else {
        return Err(Error::invalid(&e.source, "not a regular file"));
    };
    let plain_size = *plain_size;
    let ivs = FileIvs::for_path(iv_path);
    let mut limited = (&mut *file).take(plain_size);
    let mut w = WatchedWriter {
        inner: out,
        failed: None,
    };
    let result = enc.encrypt(&ivs, &mut limited, &mut w);
    crate::cancel::check()?;
    if w.failed.is_some() {
        let err = result.expect_err("a failed write fails the encryption");
        return Err(Error::io(crate::cpath::as_path(&e.cpath), err));
    }
    let read = plain_size - limited.limit();
    let mut o = Outcome {
        read,
        ..Outcome::default()
    };
    match result {
        Err(err) => o.error = Some(err),
        Ok(_) => {
            let mut probe = [0u8; 1];
            o.grew = read == plain_size && matches!(file.read(&mut probe), Ok(1));
            o.changed = !super::source::still_as_listed(src, e, plain_size);
        }
    }
    Ok(o)
}

/// File encryptors for the worker threads: each keeps its buffers from one file to the
/// next, so small files do not each allocate a batch buffer.
pub struct Encryptors<'a> {
    cipher: &'a ContentCipher,
    free: Mutex<Vec<FileEncryptor<'a>>>,
}

impl<'a> Encryptors<'a> {
    pub fn new(cipher: &'a ContentCipher) -> Self {
        Encryptors {
            cipher,
            free: Mutex::new(Vec::new()),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FileEncryptor<'a>) -> T) -> T {
        let mut enc = self
            .free
            .lock()
            .expect("no panics while held")
            .pop()
            .unwrap_or_else(|| FileEncryptor::new(self.cipher));
        let out = f(&mut enc);
        self.free.lock().expect("no panics while held").push(enc);
        out
    }
}
