//! Offline path mapping between a plaintext tree and its reverse view: what gocryptfs
//! answers through a running mount's control socket (`EncryptPath`/`DecryptPath`),
//! without the mount.

use std::path::Path;

use crate::cryptor::Cryptor;
use crate::error::{Error, IoContext, Result};
use crate::names::{parse_long_name, DIRIV_NAME, LONGNAME_SUFFIX, NAME_MAX};

fn components(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// The view path of a plaintext path relative to the source root (long names in their
/// hashed form, as the view shows them). Pure: no file is read.
pub fn encrypt_path(cryptor: &Cryptor, plain: &[u8]) -> Result<Vec<u8>> {
    let mut cpath: Vec<u8> = Vec::new();
    for name in components(plain) {
        if name == b".." || name.len() > NAME_MAX {
            return Err(Error::invalid(
                Path::new("path"),
                "components must be names of at most 255 bytes, not '..'",
            ));
        }
        let shown = match &cryptor.names {
            None => name.to_vec(),
            Some(codec) => {
                let cname = codec.encrypt(&cryptor.reverse_dir_iv(&cpath), name);
                if codec.is_long(&cname) {
                    codec.long_name(&cname).into_bytes()
                } else {
                    cname.into_bytes()
                }
            }
        };
        if !cpath.is_empty() {
            cpath.push(b'/');
        }
        cpath.extend_from_slice(&shown);
    }
    Ok(cpath)
}

/// The plaintext path of a view path inside the ciphertext tree at `root`. Dir IVs come
/// from the tree's `gocryptfs.diriv` files (or from the path, for a reverse-made tree
/// that lacks them); long names from their `.name` files.
pub fn decrypt_path(cryptor: &Cryptor, root: &Path, cpath: &[u8]) -> Result<Vec<u8>> {
    let Some(codec) = &cryptor.names else {
        return Ok(components(cpath).collect::<Vec<_>>().join(&b'/'));
    };
    let mut cdir: Vec<u8> = Vec::new();
    let mut plain: Vec<u8> = Vec::new();
    for cname in components(cpath) {
        let dir = root.join(std::ffi::OsStr::from_bytes(&cdir));
        let dir_iv = if cryptor.format.dir_iv {
            match crate::smallfile::read(&dir.join(DIRIV_NAME), 16, false) {
                Ok(iv) => iv
                    .try_into()
                    .map_err(|_| Error::invalid(dir.join(DIRIV_NAME), "not 16 bytes"))?,
                Err(_) => cryptor.reverse_dir_iv(&cdir),
            }
        } else {
            [0; 16]
        };
        let full = match parse_long_name(cname) {
            Some((_, false)) => {
                let mut name_file = cname.to_vec();
                name_file.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
                let p = dir.join(std::ffi::OsStr::from_bytes(&name_file));
                let mut full =
                    crate::smallfile::read(&p, crate::restore::MAX_NAME_FILE, false).at(&p)?;
                if full.last() == Some(&b'\n') {
                    full.pop();
                }
                full
            }
            _ => cname.to_vec(),
        };
        let name = codec.decrypt(&dir_iv, &full).map_err(|e| {
            Error::invalid(
                root.join(std::ffi::OsStr::from_bytes(&cdir))
                    .join(std::ffi::OsStr::from_bytes(cname)),
                e.to_string(),
            )
        })?;
        for (acc, part) in [(&mut cdir, cname), (&mut plain, &name[..])] {
            if !acc.is_empty() {
                acc.push(b'/');
            }
            acc.extend_from_slice(part);
        }
    }
    Ok(plain)
}

use std::os::unix::ffi::OsStrExt;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::keys::MasterKey;

    #[test]
    fn matches_the_zero_key_vectors_and_round_trips() {
        let c = Cryptor::new(&MasterKey::from_bytes([0; 32]), Format::DEFAULT_REVERSE).unwrap();
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
}
