//! `info`, `encrypt-path`, `decrypt-path`: look at a config or map paths, offline.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cryptbak::backup::paths as pathmap;
use cryptbak::format::config::{Config, Creator, Flag, MAX_CONFIG_LEN};
use cryptbak::format::names::{CONF_NAME, REVERSE_CONF_NAME};
use cryptbak::format::Cryptor;
use cryptbak::view::ViewVersion;
use cryptbak::{Error, Result};

use super::args::{DecryptPathArgs, EncryptPathArgs, InfoArgs};
use super::commands::unlock;
use super::exit;
use super::report::sanitize;

/// The config a path means: the file itself, or the one a source or backup dir holds.
fn config_path(p: &Path) -> PathBuf {
    if !p.is_dir() {
        return p.to_path_buf();
    }
    let reverse = p.join(REVERSE_CONF_NAME);
    if reverse.exists() {
        reverse
    } else {
        p.join(CONF_NAME)
    }
}

/// The config of a tar archive of a backup: its `./gocryptfs.conf` member.
fn config_in_tar(path: &Path) -> Result<Config> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut tar = cryptbak::backup::tar::TarReader::new(std::io::BufReader::new(file));
    while let Some(m) = tar.next_member() {
        let m = m.map_err(|e| Error::invalid(path, e.0))?;
        let name = m.path.strip_prefix(b"./").unwrap_or(&m.path);
        if name == CONF_NAME.as_bytes() {
            let mut bytes = Vec::new();
            tar.data()
                .take(MAX_CONFIG_LEN as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(path, e))?;
            let shown = path.join(CONF_NAME);
            if bytes.len() > MAX_CONFIG_LEN {
                return Err(Error::ConfigInvalid {
                    path: shown,
                    msg: "larger than any gocryptfs config".into(),
                });
            }
            return Config::parse(&bytes).map_err(|msg| Error::ConfigInvalid { path: shown, msg });
        }
    }
    Err(Error::invalid(
        path,
        "a tar archive without gocryptfs.conf (made with --config, or not a backup)",
    ))
}

pub fn info(a: &InfoArgs) -> Result<i32> {
    let path = config_path(&a.path);
    let cfg = if !a.path.is_dir() && super::source::looks_like_tar(&a.path) {
        config_in_tar(&a.path)?
    } else {
        Config::load(&path)?
    };
    let f = cfg.format();
    let names = if f.plaintext_names {
        "plaintext (not encrypted)".to_string()
    } else {
        format!(
            "EME-encrypted, {}, {} base64, long names hashed above {} characters",
            if f.dir_iv {
                "per-directory IVs"
            } else {
                "deterministic (no gocryptfs.diriv)"
            },
            if f.raw64 { "unpadded" } else { "padded" },
            f.long_name_max.unwrap_or(255)
        )
    };
    let content = if f.aes_siv {
        "AES-SIV-512 (usable with gocryptfs -reverse and cryptbak export)"
    } else if f.xchacha {
        "XChaCha20-Poly1305 (forward mode only)"
    } else {
        "AES-256-GCM (forward mode only)"
    };
    let flags: Vec<&str> = cfg.flags().iter().map(|f| f.name()).collect();
    let mem_mib = cfg.scrypt.memory_bytes() / (1 << 20);
    let creator = cfg.created_by();
    // The view matters only for configs export can use (reverse mode: AES-SIV).
    let creator_view = creator.reverse_view();
    if a.json {
        let (program, version) = match &creator {
            Creator::Gocryptfs { version } => (
                Some("gocryptfs"),
                version.map(|(a, b, c)| format!("{a}.{b}.{c}")),
            ),
            Creator::Cryptbak { version } => (Some("cryptbak"), Some(version.clone())),
            Creator::Other => (None, None),
        };
        let view = f.aes_siv.then(|| {
            serde_json::json!({
                "default_compat": ViewVersion::DEFAULT.name(),
                "creator_compat": creator_view.map(ViewVersion::name),
            })
        });
        let v = serde_json::json!({
            "config": path.to_string_lossy(),
            "creator": cfg.creator,
            "created_by": { "program": program, "version": version },
            "view": view,
            "feature_flags": flags,
            "long_name_max": f.long_name_max,
            "content": content,
            "names": names,
            "key_derivation": if cfg.has(Flag::Hkdf) { "HKDF-SHA256" } else { "legacy (no HKDF)" },
            "scrypt": { "N": cfg.scrypt.n(), "log2_N": cfg.scrypt.log_n, "R": cfg.scrypt.r, "P": cfg.scrypt.p, "memory_MiB": mem_mib as u64 },
        });
        println!("{v:#}");
    } else {
        println!("config:   {}", sanitize(&path.to_string_lossy()));
        println!("creator:  {}", sanitize(&cfg.creator));
        println!("view:     {}", view_line(f.aes_siv, &creator, creator_view));
        println!("flags:    {}", flags.join(" "));
        println!("content:  {content}");
        println!("names:    {names}");
        println!(
            "password: scrypt N=2^{} R={} P={} ({} MiB per unlock), then {}",
            cfg.scrypt.log_n,
            cfg.scrypt.r,
            cfg.scrypt.p,
            mem_mib,
            if cfg.has(Flag::Hkdf) {
                "HKDF-SHA256 and AES-256-GCM"
            } else {
                "AES-256-GCM (legacy, no HKDF)"
            }
        );
    }
    Ok(exit::OK)
}

/// What `export` writes for this config, and which `--compat` matches the reverse mount
/// of the gocryptfs release that wrote it (the rule is `Creator::reverse_view`).
fn view_line(aes_siv: bool, creator: &Creator, creator_view: Option<ViewVersion>) -> String {
    if !aes_siv {
        return "none: a forward-mode config (export, like gocryptfs -reverse, needs AES-SIV)"
            .into();
    }
    let default = ViewVersion::DEFAULT.name();
    match (creator, creator_view) {
        (Creator::Gocryptfs { .. }, Some(v)) if v == ViewVersion::DEFAULT => format!(
            "export writes the {default} view (the default), which is what this gocryptfs \
             release shows in reverse mode"
        ),
        (Creator::Gocryptfs { .. }, Some(v)) => format!(
            "export writes the {default} view by default; this gocryptfs release shows the {v} \
             view: --compat {v} matches its reverse mount",
            v = v.name()
        ),
        _ => format!(
            "export writes the {default} view by default (gocryptfs 2.5 and later); \
             --compat 2.3 matches gocryptfs 2.3 and 2.4"
        ),
    }
}

/// The keys of the reverse view (`reverse`, for encrypt-path) or of a backup to read.
fn cryptor_for(
    key: &super::args::KeyArgs,
    default_config: &Path,
    reverse: bool,
) -> Result<Cryptor> {
    let u = unlock(key, default_config, "no such file")?;
    let aead = Some(cryptbak::format::content::Aead::of(&u.format));
    if reverse {
        Cryptor::new(&u.master, u.format)
    } else {
        Cryptor::for_reading(&u.master, u.format, aead)
    }
    .map_err(|e| Error::ConfigUnsupported {
        path: key
            .config
            .clone()
            .unwrap_or_else(|| default_config.to_path_buf()),
        msg: e.to_string(),
    })
}

fn print_bytes(b: &[u8]) {
    println!("{}", sanitize(&String::from_utf8_lossy(b)));
}

/// Every argument is tried; each failure is one line naming it. Exit code 2 when any
/// failed (as for a run that finished with per-entry errors).
fn each_path(paths: &[PathBuf], mut one: impl FnMut(&Path) -> Result<Vec<u8>>) -> i32 {
    let mut failed = false;
    for p in paths {
        match one(p) {
            Ok(out) => print_bytes(&out),
            Err(e) => {
                failed = true;
                super::report::error(&sanitize(&e.to_string()));
            }
        }
    }
    if failed {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// A path given to encrypt-path, relative to SRC: an absolute one must lie inside SRC.
fn relative_to_src(src: &Path, p: &Path) -> Result<PathBuf> {
    if !p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let canon = src.canonicalize().map_err(|e| Error::io(src, e))?;
    for base in [src, canon.as_path()] {
        if let Ok(rel) = p.strip_prefix(base) {
            return Ok(rel.to_path_buf());
        }
    }
    Err(Error::invalid(
        p,
        format!("is not inside SRC ({})", super::report::show_path(src)),
    ))
}

/// Check that `rel` names an entry of the source, through directory handles.
fn exists_in(src: &cryptbak::fs::Dir, rel: &Path, shown: &Path) -> Result<()> {
    let parts: Vec<&[u8]> = rel
        .as_os_str()
        .as_bytes()
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(());
    };
    let missing = || Error::invalid(shown, "does not exist in SRC");
    let mut dir = src.try_clone().map_err(|e| Error::io(shown, e))?;
    for d in dirs {
        dir = dir.open_dir(d).map_err(|_| missing())?;
    }
    dir.stat_at(last).map(|_| ()).map_err(|_| missing())
}

pub fn encrypt_path(a: &EncryptPathArgs) -> Result<i32> {
    let src = super::source::open_dir_arg(&a.src, "SRC")?;
    let cryptor = cryptor_for(&a.key, &a.src.join(REVERSE_CONF_NAME), true)?;
    Ok(each_path(&a.paths, |p| {
        let rel = relative_to_src(&a.src, p)?;
        let c = pathmap::encrypt_path(&cryptor, rel.as_os_str().as_bytes()).map_err(|_| {
            Error::invalid(
                p,
                "not a relative path of names (at most 255 bytes each, no '..')",
            )
        })?;
        exists_in(&src, &rel, p)?;
        Ok(c)
    }))
}

pub fn decrypt_path(a: &DecryptPathArgs) -> Result<i32> {
    let cryptor = cryptor_for(&a.key, &a.backup.join(CONF_NAME), false)?;
    Ok(each_path(&a.paths, |p| {
        pathmap::decrypt_path(&cryptor, &a.backup, p.as_os_str().as_bytes())
    }))
}
