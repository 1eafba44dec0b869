//! `gocryptfs.conf` / `.gocryptfs.reverse.conf`: model, parse, validate, create
//! (gocryptfs `internal/configfile`; FORMAT.md §2).
//!
//! Everything read here is hostile input on restore: lengths are checked before use,
//! unknown feature flags are fatal (as in gocryptfs), and the scrypt cost is capped so a
//! crafted config cannot make us burn hours of CPU or gigabytes of memory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::format::keys::{self, MasterKey, ScryptParams};
use crate::view::ViewVersion;

/// The only on-disk format version gocryptfs 2.x reads or writes.
pub const FORMAT_VERSION: u16 = 2;
pub const DEFAULT_LOG_N: u8 = 16;
pub const MIN_LOG_N: u8 = 10;
/// The largest `-scryptn` init accepts: the largest cost [`MAX_SCRYPT_WORK`] lets a
/// config be opened with (128 · R · 2^N with R = 8, P = 1). gocryptfs accepts up to 28,
/// but a config made that way could never be opened again here.
pub const MAX_LOG_N_INIT: u8 = 22;
/// Refuse to run scrypt costing more than this, as memory (128·R·N) times P: the P
/// passes run one after the other, so time grows with the product. 4 GiB is
/// `gocryptfs -scryptn 22` (gocryptfs always writes R = 8, P = 1), several seconds here;
/// a hostile config cannot make an unlock take minutes or exhaust memory.
pub const MAX_SCRYPT_WORK: u128 = 4 << 30;

/// The feature flags gocryptfs 2.3 knows (`internal/configfile/feature_flags.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    PlaintextNames,
    DirIv,
    EmeNames,
    GcmIv128,
    LongNames,
    LongNameMax,
    AesSiv,
    Raw64,
    Hkdf,
    Fido2,
    XChaCha20Poly1305,
}

const FLAG_NAMES: [(Flag, &str); 11] = [
    (Flag::PlaintextNames, "PlaintextNames"),
    (Flag::DirIv, "DirIV"),
    (Flag::EmeNames, "EMENames"),
    (Flag::GcmIv128, "GCMIV128"),
    (Flag::LongNames, "LongNames"),
    (Flag::LongNameMax, "LongNameMax"),
    (Flag::AesSiv, "AESSIV"),
    (Flag::Raw64, "Raw64"),
    (Flag::Hkdf, "HKDF"),
    (Flag::Fido2, "FIDO2"),
    (Flag::XChaCha20Poly1305, "XChaCha20Poly1305"),
];

impl Flag {
    pub fn name(self) -> &'static str {
        FLAG_NAMES
            .iter()
            .find(|(f, _)| *f == self)
            .expect("every flag is named")
            .1
    }
    fn parse(s: &str) -> Option<Flag> {
        FLAG_NAMES.iter().find(|(_, n)| *n == s).map(|(f, _)| *f)
    }
}

/// How names and contents are encoded: what the feature flags mean for the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub plaintext_names: bool,
    /// Per-directory IVs; without it every directory uses 16 zero bytes ("deterministic names").
    pub dir_iv: bool,
    pub raw64: bool,
    pub hkdf: bool,
    pub long_names: bool,
    pub long_name_max: Option<u8>,
    pub aes_siv: bool,
    pub xchacha: bool,
}

impl Format {
    /// What gocryptfs assumes when no config is read (`-masterkey`, `-zerokey` with `-reverse`).
    pub const DEFAULT_REVERSE: Format = Format {
        plaintext_names: false,
        dir_iv: true,
        raw64: true,
        hkdf: true,
        long_names: true,
        long_name_max: None,
        aes_siv: true,
        xchacha: false,
    };
}

/// What `init` should create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitOptions {
    pub log_n: u8,
    pub deterministic_names: bool,
    pub plaintext_names: bool,
    pub long_name_max: Option<u8>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            log_n: DEFAULT_LOG_N,
            deterministic_names: false,
            plaintext_names: false,
            long_name_max: None,
        }
    }
}

/// The JSON as gocryptfs writes it; field order matters for byte-identical output.
#[derive(Serialize, Deserialize)]
struct RawConfig {
    #[serde(rename = "Creator", default)]
    creator: String,
    #[serde(rename = "EncryptedKey", default)]
    encrypted_key: String,
    #[serde(rename = "ScryptObject")]
    scrypt: RawScrypt,
    #[serde(rename = "Version")]
    version: u64,
    #[serde(rename = "FeatureFlags", default)]
    feature_flags: Vec<String>,
    #[serde(rename = "FIDO2", default, skip_serializing_if = "Option::is_none")]
    fido2: Option<serde_json::Value>,
    #[serde(
        rename = "LongNameMax",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    long_name_max: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct RawScrypt {
    #[serde(rename = "Salt", default)]
    salt: String,
    #[serde(rename = "N")]
    n: u64,
    #[serde(rename = "R")]
    r: u64,
    #[serde(rename = "P")]
    p: u64,
    #[serde(rename = "KeyLen")]
    key_len: u64,
}

/// A validated config.
/// The largest config accepted (gocryptfs writes well under 1 KiB).
pub const MAX_CONFIG_LEN: usize = 64 * 1024;

#[derive(Debug, Clone)]

pub struct Config {
    pub creator: String,
    encrypted_key: Vec<u8>,
    pub scrypt: ScryptParams,
    flags: Vec<Flag>,
    pub long_name_max: Option<u8>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        // The config of a backup is as untrusted as the rest of it: no FIFO, no huge file.
        let bytes =
            crate::fs::handle::read_small_named(path, MAX_CONFIG_LEN, true).map_err(|source| {
                Error::ConfigUnreadable {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(Error::ConfigInvalid {
                path: path.to_path_buf(),
                msg: "larger than any gocryptfs config".into(),
            });
        }
        Config::parse(&bytes).map_err(|msg| Error::ConfigInvalid {
            path: path.to_path_buf(),
            msg,
        })
    }

    pub fn parse(bytes: &[u8]) -> std::result::Result<Config, String> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| format!("not a gocryptfs config ({e})"))?;
        if raw.version != u64::from(FORMAT_VERSION) {
            return Err(format!(
                "on-disk format version {} is not supported (only {FORMAT_VERSION})",
                raw.version
            ));
        }
        let mut flags = Vec::new();
        for name in &raw.feature_flags {
            let f = Flag::parse(name).ok_or_else(|| format!("unknown feature flag {name:?}"))?;
            if !flags.contains(&f) {
                flags.push(f);
            }
        }
        let encrypted_key = STANDARD
            .decode(&raw.encrypted_key)
            .map_err(|_| "EncryptedKey is not valid base64".to_string())?;
        let salt = STANDARD
            .decode(&raw.scrypt.salt)
            .map_err(|_| "ScryptObject.Salt is not valid base64".to_string())?;
        let s = &raw.scrypt;
        if !s.n.is_power_of_two() || s.n < 1 << MIN_LOG_N {
            return Err(format!(
                "ScryptObject.N = {} must be a power of two of at least 1024",
                s.n
            ));
        }
        if s.r < 8 || s.p < 1 || s.r > u64::from(u32::MAX) || s.p > u64::from(u32::MAX) {
            return Err(format!(
                "ScryptObject R = {}, P = {} out of range",
                s.r, s.p
            ));
        }
        if salt.len() < 32 {
            return Err(format!(
                "ScryptObject.Salt has {} bytes, at least 32 needed",
                salt.len()
            ));
        }
        if s.key_len != 32 {
            return Err(format!("ScryptObject.KeyLen = {} (must be 32)", s.key_len));
        }
        let scrypt = ScryptParams {
            salt,
            log_n: s.n.trailing_zeros() as u8,
            r: s.r as u32,
            p: s.p as u32,
        };
        if scrypt.memory_bytes() * u128::from(scrypt.p) > MAX_SCRYPT_WORK {
            return Err(format!(
                "scrypt cost N = {}, R = {}, P = {} is beyond cryptbak's limit (memory × P at most 4 GiB, as gocryptfs -scryptn 22); refusing to run it",
                s.n, s.r, s.p
            ));
        }
        let long_name_max = match raw.long_name_max {
            None | Some(0) => None,
            Some(n) if (62..=255).contains(&n) => Some(n as u8),
            Some(n) => return Err(format!("LongNameMax = {n} out of range 62..255")),
        };
        let cfg = Config {
            creator: raw.creator,
            encrypted_key,
            scrypt,
            flags,
            long_name_max,
        };
        cfg.check_flags(raw.fido2.is_some())?;
        Ok(cfg)
    }

    fn check_flags(&self, has_fido2_object: bool) -> std::result::Result<(), String> {
        let has = |f| self.has(f);
        if has(Flag::Fido2) || has_fido2_object {
            return Err(
                "FIDO2-protected configs need a hardware token, which cryptbak does not support"
                    .into(),
            );
        }
        if has(Flag::AesSiv) && has(Flag::XChaCha20Poly1305) {
            return Err("AESSIV and XChaCha20Poly1305 cannot both be set".into());
        }
        if has(Flag::PlaintextNames) {
            if has(Flag::DirIv) || has(Flag::EmeNames) || has(Flag::LongNames) || has(Flag::Raw64) {
                return Err(
                    "PlaintextNames cannot be combined with DirIV, EMENames, LongNames or Raw64"
                        .into(),
                );
            }
        } else if !has(Flag::EmeNames) {
            return Err(
                "encrypted names without EMENames (gocryptfs < 0.9) are not supported".into(),
            );
        }
        if has(Flag::LongNameMax) != self.long_name_max.is_some() {
            return Err("the LongNameMax flag and the LongNameMax field must come together".into());
        }
        if !has(Flag::GcmIv128) && !has(Flag::AesSiv) && !has(Flag::XChaCha20Poly1305) {
            return Err("96-bit GCM IVs (gocryptfs < 0.9) are not supported".into());
        }
        Ok(())
    }

    pub fn has(&self, f: Flag) -> bool {
        self.flags.contains(&f)
    }

    pub fn flags(&self) -> &[Flag] {
        &self.flags
    }

    pub fn format(&self) -> Format {
        Format {
            plaintext_names: self.has(Flag::PlaintextNames),
            dir_iv: self.has(Flag::DirIv),
            raw64: self.has(Flag::Raw64),
            hkdf: self.has(Flag::Hkdf),
            long_names: self.has(Flag::LongNames),
            long_name_max: self.long_name_max,
            aes_siv: self.has(Flag::AesSiv),
            xchacha: self.has(Flag::XChaCha20Poly1305),
        }
    }

    /// Decrypt the master key; `None` means a wrong password (or a tampered key blob).
    pub fn unlock(&self, password: &[u8]) -> Option<MasterKey> {
        let kek = keys::kek(password, &self.scrypt, self.has(Flag::Hkdf));
        keys::unwrap_master_key(&kek, &self.encrypted_key, self.has(Flag::Hkdf))
    }

    /// A new config for `gocryptfs -reverse`, with flags in the order gocryptfs 2.3 writes.
    pub fn create(master: &MasterKey, password: &[u8], opts: &InitOptions) -> Config {
        let mut salt = vec![0u8; 32];
        getrandom::getrandom(&mut salt).expect("the OS random generator failed");
        let scrypt = ScryptParams {
            salt,
            log_n: opts.log_n,
            r: 8,
            p: 1,
        };
        let flags = if opts.plaintext_names {
            vec![
                Flag::Hkdf,
                Flag::GcmIv128,
                Flag::PlaintextNames,
                Flag::AesSiv,
            ]
        } else {
            let mut f = vec![Flag::Hkdf, Flag::GcmIv128];
            if !opts.deterministic_names {
                f.push(Flag::DirIv);
            }
            if opts.long_name_max.is_some() {
                f.push(Flag::LongNameMax);
            }
            f.extend([Flag::EmeNames, Flag::LongNames, Flag::Raw64, Flag::AesSiv]);
            f
        };
        let kek = keys::kek(password, &scrypt, true);
        let encrypted_key = keys::wrap_master_key(&kek, master, true);
        Config {
            creator: format!("cryptbak {}", env!("CARGO_PKG_VERSION")),
            encrypted_key,
            scrypt,
            flags,
            long_name_max: if opts.plaintext_names {
                None
            } else {
                opts.long_name_max
            },
        }
    }

    /// Go `json.MarshalIndent(cfg, "", "\t")` plus a newline, as gocryptfs writes it.
    pub fn to_json(&self) -> String {
        let raw = RawConfig {
            creator: self.creator.clone(),
            encrypted_key: STANDARD.encode(&self.encrypted_key),
            scrypt: RawScrypt {
                salt: STANDARD.encode(&self.scrypt.salt),
                n: self.scrypt.n(),
                r: u64::from(self.scrypt.r),
                p: u64::from(self.scrypt.p),
                key_len: 32,
            },
            version: u64::from(FORMAT_VERSION),
            feature_flags: self.flags.iter().map(|f| f.name().to_string()).collect(),
            fido2: None,
            long_name_max: self.long_name_max.map(u64::from),
        };
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        raw.serialize(&mut ser)
            .expect("serializing to memory cannot fail");
        out.push(b'\n');
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// Write the config with mode 0400 via a temporary file, never replacing an existing one.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        if path.symlink_metadata().is_ok() {
            return Err(Error::ConfigExists {
                path: path.to_path_buf(),
            });
        }
        let tmp = path.with_file_name(format!(
            "{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&tmp)
                .at(&tmp)?;
            f.write_all(self.to_json().as_bytes()).at(&tmp)?;
            f.sync_all().at(&tmp)?;
            // A hard link fails if the target appeared meanwhile: no silent overwrite.
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::ConfigExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    Error::io(path, e)
                }
            })
        })();
        let _ = fs::remove_file(&tmp);
        result
    }
}

/// The program that wrote a config, read from its `Creator` field ("gocryptfs 2.3",
/// "gocryptfs v2.4.0" from upstream builds, "cryptbak 0.1.0"). The field is not
/// authenticated: it is what the config says, for display and advice only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creator {
    /// gocryptfs; `version` is (major, minor, patch) when the field carries one.
    Gocryptfs { version: Option<(u32, u32, u32)> },
    /// `cryptbak init`, with its version as written.
    Cryptbak { version: String },
    /// Anything else, or nothing.
    Other,
}

impl Creator {
    pub fn parse(field: &str) -> Creator {
        let field = field.trim();
        if let Some(v) = field.strip_prefix("cryptbak ") {
            return Creator::Cryptbak {
                version: v.trim().to_string(),
            };
        }
        let Some(v) = field.strip_prefix("gocryptfs") else {
            return Creator::Other;
        };
        // "gocryptfs 2.3", "gocryptfs v2.4.0", "gocryptfs v2.4.0-12-gabcdef-dirty"
        let v = v.trim_start();
        let v = v.strip_prefix('v').unwrap_or(v);
        let numbers: Vec<Option<u32>> = v
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap_or("")
            .split('.')
            .map(|n| n.parse().ok())
            .collect();
        let version = match numbers.as_slice() {
            [Some(major), Some(minor)] => Some((*major, *minor, 0)),
            [Some(major), Some(minor), Some(patch), ..] => Some((*major, *minor, *patch)),
            _ => None,
        };
        Creator::Gocryptfs { version }
    }

    /// The view this creator's own `gocryptfs -reverse` mount shows where releases
    /// differ: the virtual files' times moved 10 s later in 2.5.0 (FORMAT.md §21). None
    /// for cryptbak (it writes whichever view it is asked for) and unknown creators.
    pub fn reverse_view(&self) -> Option<ViewVersion> {
        match self {
            Creator::Gocryptfs {
                version: Some((major, minor, _)),
            } => Some(if (*major, *minor) >= (2, 5) {
                ViewVersion::V2_5
            } else {
                ViewVersion::V2_3
            }),
            _ => None,
        }
    }
}

impl Config {
    /// Who wrote this config (see [`Creator`]).
    pub fn created_by(&self) -> Creator {
        Creator::parse(&self.creator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_names_the_release_and_the_view_its_reverse_mount_shows() {
        let g = |v| Creator::Gocryptfs { version: v };
        for (field, creator, view) in [
            // Debian's builds (2.3 in bookworm, 2.5.1 in trixie, 2.6.1 in sid)
            ("gocryptfs 2.3", g(Some((2, 3, 0))), Some(ViewVersion::V2_3)),
            (
                "gocryptfs 2.5.1",
                g(Some((2, 5, 1))),
                Some(ViewVersion::V2_5),
            ),
            (
                "gocryptfs 2.6.1",
                g(Some((2, 6, 1))),
                Some(ViewVersion::V2_5),
            ),
            // upstream builds: "v" and git describe suffixes
            (
                "gocryptfs v2.4.0",
                g(Some((2, 4, 0))),
                Some(ViewVersion::V2_3),
            ),
            (
                "gocryptfs v2.5.0",
                g(Some((2, 5, 0))),
                Some(ViewVersion::V2_5),
            ),
            (
                "gocryptfs v2.4.0-31-g0fd5bd4-dirty",
                g(Some((2, 4, 0))),
                Some(ViewVersion::V2_3),
            ),
            (
                "gocryptfs v1.8.0",
                g(Some((1, 8, 0))),
                Some(ViewVersion::V2_3),
            ),
            (
                "gocryptfs v3.0",
                g(Some((3, 0, 0))),
                Some(ViewVersion::V2_5),
            ),
            ("gocryptfs [GitVersion not set]", g(None), None),
            ("gocryptfs", g(None), None),
            (
                "cryptbak 0.1.0",
                Creator::Cryptbak {
                    version: "0.1.0".into(),
                },
                None,
            ),
            ("", Creator::Other, None),
            ("securefs 0.13", Creator::Other, None),
        ] {
            let c = Creator::parse(field);
            assert_eq!(c, creator, "{field:?}");
            assert_eq!(c.reverse_view(), view, "{field:?}");
        }
        // What `cryptbak init` writes is recognised as cryptbak's.
        let cfg = Config::create(
            &MasterKey::from_bytes([1; 32]),
            b"pw",
            &InitOptions {
                log_n: 10,
                ..Default::default()
            },
        );
        assert_eq!(
            cfg.created_by(),
            Creator::Cryptbak {
                version: env!("CARGO_PKG_VERSION").into()
            }
        );
    }

    #[test]
    fn create_parse_unlock_roundtrip() {
        let m = MasterKey::from_bytes([7; 32]);
        let opts = InitOptions {
            log_n: 10,
            ..Default::default()
        };
        let cfg = Config::create(&m, b"secret", &opts);
        let json = cfg.to_json();
        assert!(json.starts_with("{\n\t\"Creator\": \"cryptbak "));
        assert!(json.contains(
            "\"FeatureFlags\": [\n\t\t\"HKDF\",\n\t\t\"GCMIV128\",\n\t\t\"DirIV\",\n\t\t\"EMENames\",\n\t\t\"LongNames\",\n\t\t\"Raw64\",\n\t\t\"AESSIV\"\n\t]\n}\n"
        ));
        let back = Config::parse(json.as_bytes()).unwrap();
        assert_eq!(back.format(), Format::DEFAULT_REVERSE);
        assert_eq!(back.unlock(b"secret").unwrap().as_bytes(), &[7; 32]);
        assert!(back.unlock(b"Secret").is_none());
    }

    #[test]
    fn variants_have_gocryptfs_flag_order() {
        let m = MasterKey::from_bytes([7; 32]);
        let det = Config::create(
            &m,
            b"p",
            &InitOptions {
                log_n: 10,
                deterministic_names: true,
                ..Default::default()
            },
        );
        assert_eq!(
            det.flags().iter().map(|f| f.name()).collect::<Vec<_>>(),
            [
                "HKDF",
                "GCMIV128",
                "EMENames",
                "LongNames",
                "Raw64",
                "AESSIV"
            ]
        );
        let lnm = Config::create(
            &m,
            b"p",
            &InitOptions {
                log_n: 10,
                long_name_max: Some(100),
                ..Default::default()
            },
        );
        assert!(lnm
            .to_json()
            .ends_with("\"AESSIV\"\n\t],\n\t\"LongNameMax\": 100\n}\n"));
        assert_eq!(lnm.flags()[3], Flag::LongNameMax);
        let ptn = Config::create(
            &m,
            b"p",
            &InitOptions {
                log_n: 10,
                plaintext_names: true,
                ..Default::default()
            },
        );
        assert!(ptn.format().plaintext_names && !ptn.format().dir_iv);
        for c in [det, lnm, ptn] {
            Config::parse(c.to_json().as_bytes()).unwrap();
        }
    }

    fn with_field(json: &str, from: &str, to: &str) -> String {
        assert!(json.contains(from), "{from}");
        json.replace(from, to)
    }

    #[test]
    fn hostile_configs_are_rejected() {
        let m = MasterKey::from_bytes([7; 32]);
        let json = Config::create(
            &m,
            b"p",
            &InitOptions {
                log_n: 10,
                ..Default::default()
            },
        )
        .to_json();
        let cases = [
            with_field(&json, "\"AESSIV\"", "\"AESSIV\",\"Frobnicate\""),
            with_field(&json, "\"N\": 1024", "\"N\": 1073741824"),
            with_field(&json, "\"N\": 1024", "\"N\": 1000"),
            with_field(&json, "\"N\": 1024", "\"N\": 512"),
            with_field(&json, "\"R\": 8", "\"R\": 4"),
            with_field(&json, "\"P\": 1", "\"P\": 5000"),
            with_field(&json, "\"KeyLen\": 32", "\"KeyLen\": 16"),
            with_field(&json, "\"Version\": 2", "\"Version\": 3"),
            with_field(&json, "\"EMENames\",", ""),
            with_field(&json, "\"AESSIV\"", "\"AESSIV\",\"FIDO2\""),
            json[..json.len() / 2].to_string(),
            String::new(),
        ];
        for c in &cases {
            assert!(Config::parse(c.as_bytes()).is_err(), "accepted: {c}");
        }
        // The untampered twin parses.
        assert!(Config::parse(json.as_bytes()).is_ok());

        // The scrypt cost bound is on memory × P: -scryptn 22 (4 GiB) passes, so do
        // many cheap passes; twice the limit in either form does not.
        let cost = |n: u64, r: u64, p: u64| {
            let j = with_field(&json, "\"N\": 1024", &format!("\"N\": {n}"));
            let j = with_field(&j, "\"R\": 8", &format!("\"R\": {r}"));
            Config::parse(with_field(&j, "\"P\": 1", &format!("\"P\": {p}")).as_bytes())
        };
        assert!(cost(1 << 22, 8, 1).is_ok());
        assert!(cost(1 << 14, 8, 16).is_ok());
        assert!(cost(1 << 22, 8, 2).is_err());
        assert!(cost(1 << 23, 8, 1).is_err());
        assert!(cost(1 << 10, 65536, 2).is_err());
    }

    #[test]
    fn legacy_config_without_hkdf_and_raw64() {
        // Shape of gocryptfs's v1.x reverse example filesystems: no HKDF, padded base64.
        let m = MasterKey::from_bytes([9; 32]);
        let mut cfg = Config::create(
            &m,
            b"test",
            &InitOptions {
                log_n: 10,
                ..Default::default()
            },
        );
        cfg.flags = vec![
            Flag::GcmIv128,
            Flag::DirIv,
            Flag::EmeNames,
            Flag::LongNames,
            Flag::AesSiv,
        ];
        let kek = keys::kek(b"test", &cfg.scrypt, false);
        cfg.encrypted_key = keys::wrap_master_key(&kek, &m, false);
        let back = Config::parse(cfg.to_json().as_bytes()).unwrap();
        assert!(!back.format().hkdf && !back.format().raw64);
        assert_eq!(back.unlock(b"test").unwrap().as_bytes(), &[9; 32]);
    }

    #[test]
    fn the_largest_cost_init_accepts_can_be_opened() {
        // Made cheaply, then given the cost init would write: no scrypt runs here.
        let cheap = InitOptions {
            log_n: 10,
            ..InitOptions::default()
        };
        let json = Config::create(&MasterKey::from_bytes([7; 32]), b"pw", &cheap).to_json();
        let with_log_n =
            |log_n: u8| with_field(&json, "\"N\": 1024", &format!("\"N\": {}", 1u64 << log_n));
        assert!(json.contains("\"N\": 1024"), "{json}");
        assert!(Config::parse(with_log_n(MAX_LOG_N_INIT).as_bytes()).is_ok());
        let err = Config::parse(with_log_n(MAX_LOG_N_INIT + 1).as_bytes()).unwrap_err();
        assert!(err.contains("beyond cryptbak's limit"), "{err}");
    }
}
