//! A tar reader for hostile streams: ustar, GNU (`tar --format=gnu`, GNU tar's default),
//! pax (`--format=posix`, what `cryptbak export --tar` writes) and what bsdtar writes.
//!
//! Written here rather than taken from the `tar` crate, which splits pax records on
//! newlines (tar-rs #452: a `-plaintextnames` name holding a newline came back truncated,
//! and `A…⏎11 path=zz` became the file `zz`) and reads negative times wrong. Here:
//!
//! * pax records are parsed by their length prefix (POSIX: `"%d %s=%s\n"`, the length
//!   counting the whole record), so a value may hold any byte, newlines included;
//! * pax times are signed decimals with a fraction (`-0.5` is half a second before the
//!   epoch, not after);
//! * numeric fields are octal, or GNU base-256 (first byte 0x80, or 0xff for a negative
//!   two's complement value: GNU tar's pre-1970 times);
//! * the header checksum is checked (as GNU tar does: unsigned or signed byte sum);
//! * a member's extended records (GNU long name and link, pax) may take at most
//!   [`MAX_HEADER_BYTES`], since they are held in memory; member data is never held.

use std::io::{self, Read};

use crate::view::Time;

pub const BLOCK: usize = 512;

/// The most a member's extended header records may take: GNU long name and long link and
/// pax records. Real ones take a few KiB.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// What a member is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    CharDevice,
    BlockDevice,
    Fifo,
    /// A pax global header: archive-wide records (a comment, say); nothing to restore.
    Global,
    /// A GNU sparse file (type `S`, or pax `GNU.sparse.*` records): its holes are zeros
    /// that are not in the stream, so a few bytes could expand to any size. Refused.
    Sparse,
    /// Any other type flag (`V` volume label, `M` multi-volume, vendor types).
    Other(u8),
}

/// One member's header, with its extended records applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The path as stored: raw bytes (pax `path`, else GNU long name, else ustar
    /// prefix and name).
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// `None` when the field does not fit a uid (a hostile header).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Time,
    pub atime: Option<Time>,
    /// Bytes of member data in the stream (pax `size` included).
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// A problem with the member's extended records; the member should be skipped.
    pub problem: Option<String>,
}

/// The stream cannot be read on (a broken header, a read error, records too large).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Self {
        Fatal(e.to_string())
    }
}

/// Reads members one after the other; the data of the current member is read with
/// [`TarReader::data`] (what is not read is skipped by the next [`TarReader::next_member`]).
pub struct TarReader<R> {
    r: R,
    /// Data bytes of the current member not read yet.
    left: u64,
    /// Padding after the current member's data.
    pad: u64,
    done: bool,
}

/// Extended records that apply to the next member.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<Time>,
    atime: Option<Time>,
    uid: Option<Option<u32>>,
    gid: Option<Option<u32>>,
    sparse: bool,
    problem: Option<String>,
    /// Bytes of records read for this member so far.
    bytes: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> Self {
        TarReader {
            r,
            left: 0,
            pad: 0,
            done: false,
        }
    }

    /// The rest of the current member's data.
    pub fn data(&mut self) -> Data<'_, R> {
        Data { t: self }
    }

    /// Skip what is left of the current member.
    fn skip_rest(&mut self) -> io::Result<()> {
        let n = self.left + self.pad;
        self.left = 0;
        self.pad = 0;
        let copied = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
        if copied < n {
            // The stream ended inside the member: nothing follows.
            self.done = true;
        }
        Ok(())
    }

    /// Read exactly one block; `false` at a clean end of the stream.
    fn block(&mut self, b: &mut [u8; BLOCK]) -> Result<bool, Fatal> {
        let mut got = 0;
        while got < BLOCK {
            match self.r.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(Fatal(format!(
                        "the stream ends inside a header ({got} of {BLOCK} bytes)"
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// The data of an extended-record member, counted against the budget.
    fn records(&mut self, size: u64, pending: &mut Pending) -> Result<Vec<u8>, Fatal> {
        pending.bytes = pending.bytes.saturating_add(size);
        if pending.bytes > MAX_HEADER_BYTES {
            return Err(Fatal(format!(
                "a member's header records (GNU long name, pax) take more than {MAX_HEADER_BYTES} bytes; refused"
            )));
        }
        let mut v = Vec::with_capacity(size as usize);
        (&mut self.r).take(size).read_to_end(&mut v)?;
        if (v.len() as u64) < size {
            return Err(Fatal(
                "the stream ends inside a member's header records".into(),
            ));
        }
        let pad = padding(size);
        io::copy(&mut (&mut self.r).take(pad), &mut io::sink())?;
        Ok(v)
    }

    /// The next member, `None` at the end of the archive.
    pub fn next_member(&mut self) -> Option<Result<Member, Fatal>> {
        if let Err(e) = self.skip_rest() {
            self.done = true;
            return Some(Err(e.into()));
        }
        if self.done {
            return None;
        }
        let r = self.read_member();
        match r {
            Ok(Some(m)) => Some(Ok(m)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn read_member(&mut self) -> Result<Option<Member>, Fatal> {
        let mut pending = Pending::default();
        let mut h = [0u8; BLOCK];
        loop {
            if !self.block(&mut h)? {
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                // End of archive (two zero blocks; one is enough, as GNU tar accepts).
                return Ok(None);
            }
            check_sum(&h)?;
            let size = number(&h[124..136])
                .filter(|&n| n >= 0)
                .ok_or_else(|| Fatal("invalid size field in a header".into()))?
                as u64;
            match h[156] {
                b'x' | b'X' => {
                    let data = self.records(size, &mut pending)?;
                    if let Err(e) = pax_records(&data, &mut pending) {
                        pending.problem = Some(format!("malformed pax extended header: {e}"));
                    }
                }
                b'L' => pending.path = Some(nul_terminated(&self.records(size, &mut pending)?)),
                b'K' => pending.link = Some(nul_terminated(&self.records(size, &mut pending)?)),
                _ => return Ok(Some(self.member(&h, size, pending))),
            }
        }
    }

    fn member(&mut self, h: &[u8; BLOCK], header_size: u64, p: Pending) -> Member {
        let typeflag = h[156];
        let gnu = &h[257..265] == b"ustar  \0";
        let ustar = &h[257..263] == b"ustar\0";
        let path = p.path.unwrap_or_else(|| {
            let name = nul_terminated(&h[..100]);
            let prefix = nul_terminated(&h[345..500]);
            if ustar && !prefix.is_empty() {
                [&prefix[..], b"/", &name[..]].concat()
            } else {
                name
            }
        });
        let link = p.link.unwrap_or_else(|| nul_terminated(&h[157..257]));
        let mut kind = match typeflag {
            b'0' | b'\0' | b'7' => Kind::File,
            b'1' => Kind::HardLink(link),
            b'2' => Kind::Symlink(link),
            b'3' => Kind::CharDevice,
            b'4' => Kind::BlockDevice,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            b'g' => Kind::Global,
            b'S' => Kind::Sparse,
            other => Kind::Other(other),
        };
        if p.sparse {
            kind = Kind::Sparse;
        }
        let id = |field: &[u8]| number(field).and_then(|n| u32::try_from(n).ok());
        let time = |field: &[u8]| Time {
            sec: number(field).map_or(0, |n| n.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            nsec: 0,
        };
        let dev = |field: &[u8]| {
            number(field)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)
        };
        let gnu_atime = (gnu && h[345..357].iter().any(|&b| b != 0)).then(|| time(&h[345..357]));
        // The data in the stream: a pax `size` wins over the header's.
        let size = p.size.unwrap_or(header_size);
        self.left = size;
        self.pad = padding(size);
        Member {
            path,
            kind,
            mode: number(&h[100..108]).map_or(0, |m| (m as u32) & 0o7777),
            uid: p.uid.unwrap_or_else(|| id(&h[108..116])),
            gid: p.gid.unwrap_or_else(|| id(&h[116..124])),
            mtime: p.mtime.unwrap_or_else(|| time(&h[136..148])),
            atime: p.atime.or(gnu_atime),
            size,
            dev_major: dev(&h[329..337]),
            dev_minor: dev(&h[337..345]),
            problem: p.problem,
        }
    }
}

/// The data of the current member.
pub struct Data<'a, R> {
    t: &'a mut TarReader<R>,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.t.left == 0 {
            return Ok(0);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.t.left).unwrap_or(usize::MAX));
        let got = self.t.r.read(&mut buf[..n])?;
        if got == 0 {
            // The stream ended inside the member; the caller sees a short read.
            self.t.left = 0;
            self.t.pad = 0;
            self.t.done = true;
        }
        self.t.left -= got as u64;
        Ok(got)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Bytes up to the first NUL.
fn nul_terminated(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[..end].to_vec()
}

/// A numeric header field: octal digits (leading spaces, terminated by NUL or space),
/// or GNU base-256 when the first byte has its top bit set (0x80 positive, 0xff and
/// the sign bit set: negative two's complement). `None` if it is neither.
pub fn number(field: &[u8]) -> Option<i128> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // 8- and 12-byte fields: at most 95 value bits, which fit an i128.
        let negative = field[0] & 0x40 != 0;
        let mut v: i128 = if negative { -1 } else { 0 };
        v = (v << 7) | i128::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = (v << 8) | i128::from(b);
        }
        return Some(v);
    }
    let s = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != 0 && b != b' ');
    let mut v: i128 = 0;
    let mut any = false;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v * 8 + i128::from(b - b'0');
        any = true;
    }
    // An all-NUL field (some writers leave unused fields empty) reads as zero.
    Some(if any { v } else { 0 })
}

fn check_sum(h: &[u8; BLOCK]) -> Result<(), Fatal> {
    let want = number(&h[148..156]).ok_or_else(|| Fatal("invalid header checksum field".into()))?;
    let (mut unsigned, mut signed) = (0i128, 0i128);
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i128::from(b);
        signed += i128::from(b as i8);
    }
    if want == unsigned || want == signed {
        Ok(())
    } else {
        Err(Fatal(
            "header checksum mismatch (not a tar stream, or a damaged one)".into(),
        ))
    }
}

/// Apply pax records (`"%d %s=%s\n"`, the length counting the whole record) to the
/// next member. Values are raw bytes and may contain newlines.
fn pax_records(mut data: &[u8], p: &mut Pending) -> Result<(), String> {
    while !data.is_empty() {
        // Some writers pad the record area with NULs.
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or("record length is not a number")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(format!("record length {len} does not fit the record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("record without '='")?;
        let (key, value) = (&rec[..eq], &rec[eq + 1..]);
        match key {
            b"path" => p.path = Some(value.to_vec()),
            b"linkpath" => p.link = Some(value.to_vec()),
            b"size" => {
                p.size = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("size is not a number")?,
                )
            }
            // Bad times and ids are not worth refusing the member for: the header's are
            // used (they are not authenticated anyway).
            b"mtime" => p.mtime = pax_time(value).or(p.mtime),
            b"atime" => p.atime = pax_time(value),
            b"uid" => p.uid = Some(pax_id(value)),
            b"gid" => p.gid = Some(pax_id(value)),
            k if k.starts_with(b"GNU.sparse.") => p.sparse = true,
            _ => {}
        }
        data = &data[len..];
    }
    Ok(())
}

fn pax_id(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A pax time: a signed decimal with an optional fraction (`1700000000.5`, `-0.25`).
/// `-1.25` is 1.25 s before the epoch: second −2, 750 000 000 ns.
pub fn pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (sec, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if sec.is_empty() || !sec.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = sec.parse().ok()?;
    let mut nine: String = frac.chars().take(9).collect();
    while nine.len() < 9 {
        nine.push('0');
    }
    let nsec: u32 = nine.parse().ok()?;
    Some(if !negative {
        Time { sec, nsec }
    } else if nsec == 0 {
        Time {
            sec: sec.checked_neg()?,
            nsec: 0,
        }
    } else {
        // −(sec + f) = −(sec + 1) + (1 − f)
        Time {
            sec: sec.checked_neg()?.checked_sub(1)?,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0001750\0");
        h[116..124].copy_from_slice(b"0001750\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"14000000000\0");
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        seal(&mut h);
        h
    }

    fn seal(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    fn pad(v: &mut Vec<u8>) {
        v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
    }

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let body = 1 + key.len() + 1 + value.len() + 1;
        let mut n = body + 1;
        while n.to_string().len() + body != n {
            n = n.to_string().len() + body;
        }
        let mut r = format!("{n} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    }

    /// (name, type flag, data, pax records)
    type Spec<'a> = (&'a [u8], u8, &'a [u8], Vec<u8>);

    fn archive(members: &[Spec<'_>]) -> Vec<u8> {
        let mut v = Vec::new();
        for (name, t, data, pax) in members {
            if !pax.is_empty() {
                v.extend_from_slice(&header(b"PaxHeader", b'x', pax.len() as u64));
                v.extend_from_slice(pax);
                pad(&mut v);
            }
            v.extend_from_slice(&header(name, *t, data.len() as u64));
            v.extend_from_slice(data);
            pad(&mut v);
        }
        v.extend_from_slice(&[0; 2 * BLOCK]);
        v
    }

    fn read_all(bytes: &[u8]) -> Vec<(Member, Vec<u8>)> {
        let mut t = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(m) = t.next_member() {
            let m = m.unwrap();
            let mut d = Vec::new();
            t.data().read_to_end(&mut d).unwrap();
            out.push((m, d));
        }
        out
    }

    #[test]
    fn pax_values_with_newlines_are_whole() {
        // tar-rs #452: the record splits at the newline; "zz" became the path.
        let evil = b"A\n11 path=zz";
        let pax = record("path", evil);
        let got = read_all(&archive(&[(b"placeholder", b'0', b"data", pax)]));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.path, evil);
        assert_eq!(got[0].1, b"data");
        // A record whose length does not fit makes the member carry a problem.
        let mut bad = record("path", b"x");
        assert_eq!(bad, b"9 path=x\n");
        bad[0] = b'7';
        let got = read_all(&archive(&[(b"p", b'0', b"", bad)]));
        assert!(got[0].0.problem.is_some());
    }

    #[test]
    fn signed_fractional_times() {
        assert_eq!(
            pax_time(b"-0.5"),
            Some(Time {
                sec: -1,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            pax_time(b"0.5"),
            Some(Time {
                sec: 0,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            pax_time(b"-1.25"),
            Some(Time {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(pax_time(b"-3"), Some(Time { sec: -3, nsec: 0 }));
        assert_eq!(
            pax_time(b"1700000000.123456789123"),
            Some(Time {
                sec: 1_700_000_000,
                nsec: 123_456_789
            })
        );
        for bad in [&b"x"[..], b"", b"-", b"1e99", b"-1.-5", b"--1", b"+1"] {
            assert_eq!(pax_time(bad), None, "{bad:?}");
        }
        assert_eq!(pax_time(b"-9223372036854775808.5"), None);
        let pax = record("mtime", b"-0.5");
        let got = read_all(&archive(&[(b"f", b'0', b"", pax)]));
        assert_eq!(got[0].0.mtime.sec, -1);
    }

    #[test]
    fn gnu_base256_numbers() {
        // 1960-01-01 = -315619200, as GNU tar --format=gnu stores it.
        let mut f = [0xffu8; 12];
        f[4..].copy_from_slice(&(-315_619_200i64).to_be_bytes());
        assert_eq!(number(&f), Some(-315_619_200));
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(number(&f), Some(1 << 40));
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"  17 \0\0\0"), Some(0o17));
        assert_eq!(number(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(number(b"0009\0"), None);
        // In a header: a negative mtime.
        let mut h = header(b"old", b'0', 0);
        h[136..148].copy_from_slice(&{
            let mut f = [0xffu8; 12];
            f[4..].copy_from_slice(&(-315_619_200i64).to_be_bytes());
            f
        });
        seal(&mut h);
        let mut v = h.to_vec();
        v.extend_from_slice(&[0; 1024]);
        assert_eq!(read_all(&v)[0].0.mtime.sec, -315_619_200);
    }

    #[test]
    fn long_names_links_prefix_and_types() {
        let long = vec![b'n'; 300];
        let mut v = Vec::new();
        v.extend_from_slice(&header(b"././@LongLink", b'L', long.len() as u64 + 1));
        v.extend_from_slice(&long);
        v.push(0);
        pad(&mut v);
        v.extend_from_slice(&header(b"short", b'0', 3));
        v.extend_from_slice(b"abc");
        pad(&mut v);
        let mut h = header(b"name", b'5', 0);
        h[345..351].copy_from_slice(b"prefix");
        seal(&mut h);
        v.extend_from_slice(&h);
        let mut h = header(b"lnk", b'2', 0);
        h[157..163].copy_from_slice(b"target");
        seal(&mut h);
        v.extend_from_slice(&h);
        v.extend_from_slice(&header(b"vol", b'V', 0));
        v.extend_from_slice(&header(b"fifo", b'6', 0));
        v.extend_from_slice(&[0; 1024]);
        let got = read_all(&v);
        assert_eq!(got[0].0.path, long);
        assert_eq!(got[0].1, b"abc");
        assert_eq!(
            (got[1].0.path.as_slice(), &got[1].0.kind),
            (&b"prefix/name"[..], &Kind::Dir)
        );
        assert_eq!(got[2].0.kind, Kind::Symlink(b"target".to_vec()));
        assert_eq!(got[3].0.kind, Kind::Other(b'V'));
        assert_eq!(got[4].0.kind, Kind::Fifo);
        assert_eq!(got[0].0.uid, Some(0o1750));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn hostile_streams() {
        // A bad checksum stops the stream.
        let mut v = archive(&[(b"a", b'0', b"x", Vec::new())]);
        v[0] ^= 1;
        assert!(TarReader::new(&v[..]).next_member().unwrap().is_err());
        // Records beyond the budget are refused without being read into memory whole.
        let mut v = header(b"././@LongLink", b'L', MAX_HEADER_BYTES + 1).to_vec();
        v.resize(v.len() + 4096, b'a');
        let e = TarReader::new(&v[..]).next_member().unwrap().unwrap_err();
        assert!(e.0.contains("refused"), "{e}");
        // Data shorter than the header says: a short read, then the end.
        let mut v = header(b"cut", b'0', 5000).to_vec();
        v.extend_from_slice(&[7; 100]);
        let mut t = TarReader::new(&v[..]);
        let m = t.next_member().unwrap().unwrap();
        assert_eq!(m.size, 5000);
        let mut d = Vec::new();
        t.data().read_to_end(&mut d).unwrap();
        assert_eq!(d.len(), 100);
        assert!(t.next_member().is_none());
        // A pax size that overrides the header's, and GNU sparse records.
        let got = read_all(&archive(&[(
            b"s",
            b'0',
            b"",
            record("GNU.sparse.map", b"0,0"),
        )]));
        assert_eq!(got[0].0.kind, Kind::Sparse);
        // Unread data is skipped.
        let v = archive(&[
            (b"a", b'0', &[1; 1000], Vec::new()),
            (b"b", b'0', b"", Vec::new()),
        ]);
        let mut t = TarReader::new(&v[..]);
        t.next_member().unwrap().unwrap();
        assert_eq!(t.next_member().unwrap().unwrap().path, b"b");
    }
}
