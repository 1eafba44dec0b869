//! The metadata an object carries, and its encoding in rclone's metadata keys, so that
//! `rclone copy --metadata` of a prefix to a disk restores times and modes. Pure.
//!
//! rclone's S3 backend keeps the modification time in the user metadata key `mtime`
//! (`X-Amz-Meta-Mtime`) as decimal seconds with a nine-digit fraction
//! (`1700000000.123456789`, ncw/swift's `TimeToFloatString`), and reads it back to the
//! nanosecond. With `--metadata` its local backend also writes and applies `mode` (the
//! whole `st_mode`, in octal: `100644`), `uid` and `gid` (decimal), and writes `rdev`
//! (hexadecimal) for device nodes. Those are the keys and spellings used here;
//! tests/it/remote.rs checks them against the real rclone.

use std::collections::HashMap;

use crate::view::Time;

/// What is stored beside an object's bytes (every field optional: objects written by
/// other tools may lack any of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub mtime: Option<Time>,
    /// The full `st_mode` (file type and permission bits).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The device number of a device node (rclone's `rdev`; it does not apply it).
    pub rdev: Option<u64>,
}

pub const KEY_MTIME: &str = "mtime";
pub const KEY_MODE: &str = "mode";
pub const KEY_UID: &str = "uid";
pub const KEY_GID: &str = "gid";
pub const KEY_RDEV: &str = "rdev";

impl Meta {
    /// The user metadata to send (keys without the `x-amz-meta-` prefix).
    pub fn to_user_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        if let Some(t) = self.mtime {
            m.insert(KEY_MTIME.to_string(), format_mtime(t));
        }
        if let Some(v) = self.mode {
            m.insert(KEY_MODE.to_string(), format!("{v:o}"));
        }
        if let Some(v) = self.uid {
            m.insert(KEY_UID.to_string(), v.to_string());
        }
        if let Some(v) = self.gid {
            m.insert(KEY_GID.to_string(), v.to_string());
        }
        if let Some(v) = self.rdev {
            m.insert(KEY_RDEV.to_string(), format!("{v:x}"));
        }
        m
    }

    /// Reads the keys back. A value that does not parse is treated as absent: it was
    /// not written by us or by rclone, and an absent time only means "upload again".
    /// Key case is ignored (HTTP headers are case-insensitive; some services
    /// capitalise them).
    pub fn from_user_metadata<'a>(m: impl IntoIterator<Item = (&'a str, &'a str)>) -> Meta {
        let mut out = Meta::default();
        for (k, v) in m {
            let k = k.to_ascii_lowercase();
            match k.as_str() {
                KEY_MTIME => out.mtime = parse_mtime(v),
                KEY_MODE => out.mode = u32::from_str_radix(v.trim(), 8).ok(),
                KEY_UID => out.uid = v.trim().parse().ok(),
                KEY_GID => out.gid = v.trim().parse().ok(),
                KEY_RDEV => out.rdev = u64::from_str_radix(v.trim(), 16).ok(),
                _ => {}
            }
        }
        out
    }
}

/// `sec.nnnnnnnnn`, rclone's spelling. Before 1970 the seconds are negative and the
/// fraction still counts forward from them (Go's `t.Unix()`, `t.Nanosecond()`), which
/// is also how [`Time`] splits a time: `-1.5 s` is `-2.500000000`.
pub fn format_mtime(t: Time) -> String {
    format!("{}.{:09}", t.sec, t.nsec)
}

/// The inverse of [`format_mtime`], also accepting what other writers of this key put
/// there: whole seconds, or fewer than nine fraction digits (`1700000000.5`).
pub fn parse_mtime(s: &str) -> Option<Time> {
    let s = s.trim();
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nsec = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(Time { sec, nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64, nsec: u32) -> Time {
        Time { sec, nsec }
    }

    #[test]
    fn mtime_spelling() {
        assert_eq!(
            format_mtime(t(1700000000, 123456789)),
            "1700000000.123456789"
        );
        assert_eq!(format_mtime(t(1700000000, 5)), "1700000000.000000005");
        assert_eq!(format_mtime(t(0, 0)), "0.000000000");
        assert_eq!(format_mtime(t(-2, 500_000_000)), "-2.500000000");
    }

    #[test]
    fn mtime_round_trip() {
        for x in [
            t(0, 0),
            t(1, 999_999_999),
            t(1700000000, 1),
            t(-1, 0),
            t(-2, 500_000_000),
            t(i64::MAX, 999_999_999),
            t(i64::MIN, 0),
        ] {
            assert_eq!(parse_mtime(&format_mtime(x)), Some(x), "{x:?}");
        }
    }

    #[test]
    fn mtime_other_spellings() {
        assert_eq!(parse_mtime("1700000000"), Some(t(1700000000, 0)));
        assert_eq!(
            parse_mtime("1700000000.5"),
            Some(t(1700000000, 500_000_000))
        );
        assert_eq!(parse_mtime(" 12.000001 "), Some(t(12, 1000)));
        for bad in ["", ".", "x", "1.2.3", "1.1234567891", "1.-5", "1e9", "1.+5"] {
            assert_eq!(parse_mtime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_metadata_round_trip() {
        let m = Meta {
            mtime: Some(t(1700000000, 42)),
            mode: Some(0o100644),
            uid: Some(1000),
            gid: Some(0),
            rdev: Some(0x1abc),
        };
        let um = m.to_user_metadata();
        assert_eq!(um["mtime"], "1700000000.000000042");
        assert_eq!(um["mode"], "100644");
        assert_eq!(um["uid"], "1000");
        assert_eq!(um["gid"], "0");
        assert_eq!(um["rdev"], "1abc");
        let back = Meta::from_user_metadata(um.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(back, m);
        assert!(Meta::default().to_user_metadata().is_empty());
    }

    #[test]
    fn user_metadata_tolerates_strangers() {
        let m = Meta::from_user_metadata([
            ("Mtime", "5.000000001"),
            ("MODE", "40755"),
            ("uid", "-1"),
            ("gid", "x"),
            ("md5chksum", "abc"),
        ]);
        assert_eq!(
            m,
            Meta {
                mtime: Some(t(5, 1)),
                mode: Some(0o40755),
                uid: None,
                gid: None,
                rdev: None,
            }
        );
        assert_eq!(Meta::from_user_metadata([("mode", "999")]).mode, None);
    }
}
