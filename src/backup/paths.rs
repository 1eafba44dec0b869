//! Offline path mapping between a plaintext tree and its reverse view: what gocryptfs
//! answers through a running mount's control socket (`EncryptPath`/`DecryptPath`),
//! without the mount, with the reader's name rules.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::names::{name_file_of, NameRules, MAX_NAME_FILE};
use crate::error::{Error, Result};
use crate::format::names::DIRIV_NAME;
use crate::format::Cryptor;
use crate::fs::handle as fs;

fn components(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// The view path of a plaintext path relative to the source root (long names in their
/// hashed form, as the view shows them). Pure: no file is read.
pub fn encrypt_path(cryptor: &Cryptor, plain: &[u8]) -> Result<Vec<u8>> {
    let rules = NameRules::new(cryptor);
    let mut cpath: Vec<u8> = Vec::new();
    for name in components(plain) {
        let shown = rules.encrypt_component(&cpath, name).map_err(|_| {
            Error::invalid(
                Path::new("path"),
                "components must be names of at most 255 bytes, not '..'",
            )
        })?;
        if !cpath.is_empty() {
            cpath.push(b'/');
        }
        cpath.extend_from_slice(&shown);
    }
    Ok(cpath)
}

/// The plaintext path of a view path inside the ciphertext tree at `root`. Dir IVs come
/// from the tree's `gocryptfs.diriv` files (or from the path, for a reverse-made tree
/// that lacks them); long names from their `.name` files, which must hash to the name
/// (a `.name` file swapped in from another entry is refused, not believed).
pub fn decrypt_path(cryptor: &Cryptor, root: &Path, cpath: &[u8]) -> Result<Vec<u8>> {
    let rules = NameRules::new(cryptor);
    let comps: Vec<&[u8]> = components(cpath).collect();
    if !rules.encrypted() {
        return Ok(comps.join(&b'/'));
    }
    let shown = |c: &[u8]| -> PathBuf { root.join(OsStr::from_bytes(c)) };
    let mut dir: Option<OwnedFd> = None;
    let mut cdir: Vec<u8> = Vec::new();
    let mut plain: Vec<u8> = Vec::new();
    for (i, cname) in comps.iter().enumerate() {
        // Directories are opened only as far as needed: short names of a reverse-made
        // tree decrypt without any file (dir IVs from the path).
        if dir.is_none() {
            dir = fs::open_root(root).ok();
        }
        let stored = if rules.has_diriv_files() {
            dir.as_ref()
                .and_then(|d| fs::read_small(d, OsStr::new(DIRIV_NAME), 16).ok())
                .map(|iv| {
                    <[u8; 16]>::try_from(iv.as_slice()).map_err(|_| {
                        Error::invalid(
                            shown(&crate::cpath::join(&cdir, DIRIV_NAME.as_bytes())),
                            "not 16 bytes",
                        )
                    })
                })
                .transpose()?
        } else {
            None
        };
        let iv = rules.lookup_dir_iv(&cdir, stored);
        let here = crate::cpath::join(&cdir, cname);
        let name_file = if rules.needs_name_file(cname) {
            let nf = name_file_of(cname);
            let d = dir
                .as_ref()
                .ok_or_else(|| Error::invalid(shown(&cdir), "cannot open the directory"))?;
            let content = fs::read_small(d, OsStr::from_bytes(&nf), MAX_NAME_FILE)
                .map_err(|e| Error::io(shown(&name_file_of(&here)), e))?;
            Some(content)
        } else {
            None
        };
        let name = rules
            .plain_name(&iv, cname, name_file.as_deref())
            .map_err(|e| Error::invalid(shown(&here), e.to_string()))?;
        if !plain.is_empty() {
            plain.push(b'/');
        }
        plain.extend_from_slice(&name);
        if i + 1 < comps.len() {
            dir = dir
                .as_ref()
                .and_then(|d| fs::open_dir(d, OsStr::from_bytes(cname)).ok());
            // Without the directory, names below it can still decrypt (reverse-made).
        }
        cdir = here;
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::config::Format;
    use crate::format::keys::MasterKey;

    fn zero() -> Cryptor {
        Cryptor::new(&MasterKey::from_bytes([0; 32]), Format::DEFAULT_REVERSE).unwrap()
    }

    #[test]
    fn matches_the_zero_key_vectors_and_round_trips() {
        let c = zero();
        assert_eq!(
            encrypt_path(&c, b"dir/a").unwrap(),
            b"jeOhcHZCa3ih9FpMobH2dw/wpjoSpjlG_qiNLmKVrXckg"
        );
        assert_eq!(
            encrypt_path(&c, b"/file/").unwrap(),
            b"DAn9Q3uhi2OuTFfjA4F7Aw"
        );
        let long = [b'L'; 200];
        assert_eq!(
            encrypt_path(&c, &long).unwrap(),
            b"gocryptfs.longname.yqxwZuDHawsq-tEPIs1mtvUNHo7WfE07-0HOixuy0_g"
        );
        // Without a tree on disk, short names still decrypt (dir IVs from the path).
        let nowhere = Path::new("/nonexistent-cryptbak-test");
        assert_eq!(
            decrypt_path(
                &c,
                nowhere,
                b"jeOhcHZCa3ih9FpMobH2dw/wpjoSpjlG_qiNLmKVrXckg"
            )
            .unwrap(),
            b"dir/a"
        );
        assert!(decrypt_path(
            &c,
            nowhere,
            b"jeOhcHZCa3ih9FpMobH2dw/wpjoSpjlG_qiNLmKVrXckh"
        )
        .is_err());
        assert!(encrypt_path(&c, b"a/../b").is_err());
    }

    /// Two long-named entries whose `.name` files were swapped: each `.name` decrypts
    /// to the other's name, which decrypt-path used to print (exit 0).
    #[test]
    fn swapped_name_files_are_refused() {
        let c = zero();
        let d = tempfile::tempdir().unwrap();
        let codec = c.names.as_ref().unwrap();
        let iv = c.reverse_dir_iv(b"");
        let (ca, cb) = (
            codec.encrypt(&iv, &[b'a'; 200]),
            codec.encrypt(&iv, &[b'b'; 200]),
        );
        let (la, lb) = (codec.long_name(&ca), codec.long_name(&cb));
        std::fs::write(d.path().join(format!("{la}.name")), &ca).unwrap();
        std::fs::write(d.path().join(format!("{lb}.name")), &cb).unwrap();
        assert_eq!(
            decrypt_path(&c, d.path(), la.as_bytes()).unwrap(),
            vec![b'a'; 200]
        );
        std::fs::write(d.path().join(format!("{la}.name")), &cb).unwrap();
        std::fs::write(d.path().join(format!("{lb}.name")), &ca).unwrap();
        let e = decrypt_path(&c, d.path(), la.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("does not match the hashed name"),
            "{e}"
        );
        assert!(decrypt_path(&c, d.path(), lb.as_bytes()).is_err());
    }
}
