//! Paths inside the view ("cpaths"): `/`-separated bytes, relative, `""` for the root.
//! Byte strings rather than `Path`s because IVs are hashed from exactly these bytes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `parent/name`, or `name` at the root.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
pub fn split(cpath: &[u8]) -> (&[u8], &[u8]) {
    match cpath.iter().rposition(|&c| c == b'/') {
        Some(i) => (&cpath[..i], &cpath[i + 1..]),
        None => (&[], cpath),
    }
}

/// The last component.
pub fn name(cpath: &[u8]) -> &[u8] {
    split(cpath).1
}

/// As a `Path`, for messages and for joining onto a destination root.
pub fn as_path(cpath: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(cpath))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_split() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(name(b"x/y"), b"y");
    }
}
