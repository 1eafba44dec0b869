//! A deterministic POSIX tar (pax interchange format) writer.
//!
//! Headers are built here byte by byte instead of with the `tar` crate, because every
//! byte of the archive must depend on the view alone: the crate fills some fields from
//! the running system or leaves them to defaults that may change between versions
//! (user and group names, device numbers, the name and fields of pax headers), and it
//! would not let us choose exactly when a pax header is emitted.
//!
//! Rules, all fixed:
//! * Every header is a ustar block (`magic "ustar\0"`, version `"00"`). Numeric fields
//!   are zero-padded octal ending in NUL; the checksum is 6 octal digits, NUL, space.
//! * User and group names are empty (owners are numeric). Device numbers are zero
//!   except for character and block devices.
//! * A pax extended header (`typeflag 'x'`) precedes an entry only when a value does
//!   not fit its ustar field: `path` or `linkpath` longer than 100 bytes, an mtime with
//!   nanoseconds or outside `0..8^11`, a `size` of 8 GiB or more, a `uid`/`gid` of 8^7
//!   or more. Its records come in that order (`hdrcharset=BINARY` first when a name is
//!   not UTF-8). The overridden ustar field then holds a clamped or truncated value,
//!   which pax readers ignore. The pax header itself is named
//!   `./PaxHeaders/<last component>`, has mode 0644, owner 0:0 and the entry's mtime.
//! * `mtime` records are `seconds[.fraction]` with trailing zeros of the fraction
//!   dropped. Access and change times are never stored: reading a file changes its
//!   atime, so storing it would make two runs over the same tree differ.
//! * The archive ends with two zero blocks and is padded with zeros to a multiple of
//!   10240 bytes (GNU tar's and bsdtar's default record size).

use std::io::{self, Write};

use crate::view::Time;

pub const BLOCK: usize = 512;
/// The record size archives are padded to.
pub const RECORD: usize = 20 * BLOCK;

const NAME_LEN: usize = 100;
/// Largest value of an 8-byte octal field (7 digits).
const MAX_OCTAL_7: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (11 digits).
const MAX_OCTAL_11: u64 = 0o77777777777;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Dir,
    Fifo,
}

impl Kind {
    fn typeflag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One archive member's header.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    /// The member's name in the archive (`./x`, `./d/`).
    pub path: &'a [u8],
    pub kind: Kind,
    /// Permission bits, setuid/setgid/sticky included (`0o7777` at most).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of data that follow the header (0 except for regular files).
    pub size: u64,
    pub mtime: Time,
    /// Symlink target, or the member a hard link points to; empty otherwise.
    pub link: &'a [u8],
    /// Device numbers of character and block devices.
    pub dev_major: u32,
    pub dev_minor: u32,
}

/// Append one pax record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// `sec.fraction` as pax writes times: the value is `sec + nsec / 1e9`, so a negative
/// time with nanoseconds is written as `-(|sec| - 1).(1e9 - nsec)`.
pub fn pax_time(t: Time) -> String {
    let (neg, whole, frac) = if t.sec >= 0 || t.nsec == 0 {
        (t.sec < 0, t.sec.unsigned_abs(), t.nsec)
    } else {
        (true, t.sec.unsigned_abs() - 1, 1_000_000_000 - t.nsec)
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(&whole.to_string());
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// Zero-padded octal filling `field` but its last byte, which is NUL.
fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    debug_assert_eq!(s.len(), digits, "{v} does not fit");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// The ustar block of `h`, with `typeflag` (which differs from `h.kind` for pax headers).
/// Values too large for their field are clamped; a pax record then carries them.
fn ustar_block(h: &Header, typeflag: u8) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let n = h.path.len().min(NAME_LEN);
    b[..n].copy_from_slice(&h.path[..n]);
    octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    octal(&mut b[108..116], u64::from(h.uid).min(MAX_OCTAL_7));
    octal(&mut b[116..124], u64::from(h.gid).min(MAX_OCTAL_7));
    octal(&mut b[124..136], h.size.min(MAX_OCTAL_11));
    octal(
        &mut b[136..148],
        (h.mtime.sec.max(0) as u64).min(MAX_OCTAL_11),
    );
    b[156] = typeflag;
    let l = h.link.len().min(NAME_LEN);
    b[157..157 + l].copy_from_slice(&h.link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // 265..297 uname, 297..329 gname: empty.
    octal(&mut b[329..337], u64::from(h.dev_major).min(MAX_OCTAL_7));
    octal(&mut b[337..345], u64::from(h.dev_minor).min(MAX_OCTAL_7));
    // 345..500 prefix: unused (long names go into a pax record instead).
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}");
    b[148..154].copy_from_slice(s.as_bytes());
    b[154] = 0;
    b[155] = b' ';
    b
}

/// The last path component, for the name of a pax header (`./d/x/` → `x`).
fn last_component(path: &[u8]) -> &[u8] {
    let trimmed = match path {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        p => p,
    };
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Append the header block(s) of `h`: a pax header when needed, then the ustar header.
pub fn encode_header(h: &Header, out: &mut Vec<u8>) {
    let mut pax = Vec::new();
    let long_path = h.path.len() > NAME_LEN;
    let long_link = h.link.len() > NAME_LEN;
    let binary = (long_path && std::str::from_utf8(h.path).is_err())
        || (long_link && std::str::from_utf8(h.link).is_err());
    if binary {
        pax_record(&mut pax, "hdrcharset", b"BINARY");
    }
    if long_path {
        pax_record(&mut pax, "path", h.path);
    }
    if long_link {
        pax_record(&mut pax, "linkpath", h.link);
    }
    if h.size > MAX_OCTAL_11 {
        pax_record(&mut pax, "size", h.size.to_string().as_bytes());
    }
    let mtime_fits = h.mtime.nsec == 0 && h.mtime.sec >= 0 && h.mtime.sec as u64 <= MAX_OCTAL_11;
    if !mtime_fits {
        pax_record(&mut pax, "mtime", pax_time(h.mtime).as_bytes());
    }
    if u64::from(h.uid) > MAX_OCTAL_7 {
        pax_record(&mut pax, "uid", h.uid.to_string().as_bytes());
    }
    if u64::from(h.gid) > MAX_OCTAL_7 {
        pax_record(&mut pax, "gid", h.gid.to_string().as_bytes());
    }
    if !pax.is_empty() {
        let mut name = b"./PaxHeaders/".to_vec();
        name.extend_from_slice(last_component(h.path));
        let pax_header = Header {
            path: &name,
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: pax.len() as u64,
            mtime: Time {
                sec: h.mtime.sec,
                nsec: 0,
            },
            link: b"",
            dev_major: 0,
            dev_minor: 0,
        };
        out.extend_from_slice(&ustar_block(&pax_header, b'x'));
        out.extend_from_slice(&pax);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.extend_from_slice(&ustar_block(h, h.kind.typeflag()));
}

/// Writes members to `W`, counting bytes so data can be padded to whole blocks.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
    scratch: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            written: 0,
            scratch: Vec::with_capacity(4 * BLOCK),
        }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    /// Write a member's header; its `h.size` bytes of data must follow, then [`pad`].
    ///
    /// [`pad`]: TarWriter::pad
    pub fn header(&mut self, h: &Header) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        encode_header(h, &mut buf);
        let r = self.write_all(&buf);
        self.scratch = buf;
        r
    }

    /// Write `n` copies of `byte` (filler for data that could not be read).
    pub fn fill(&mut self, byte: u8, mut n: u64) -> io::Result<()> {
        let chunk = [byte; 8192];
        while n > 0 {
            let k = n.min(chunk.len() as u64) as usize;
            self.write_all(&chunk[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Zero-fill to the next block boundary, ending a member's data.
    pub fn pad(&mut self) -> io::Result<()> {
        let rem = (self.written % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// End the archive: two zero blocks, then zeros up to a whole record; flush.
    pub fn finish(&mut self) -> io::Result<()> {
        self.pad()?;
        let end = (self.written + 2 * BLOCK as u64).next_multiple_of(RECORD as u64);
        self.fill(0, end - self.written)?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Write for TarWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64, nsec: u32) -> Time {
        Time { sec, nsec }
    }

    fn file(path: &[u8]) -> Header<'_> {
        Header {
            path,
            kind: Kind::File,
            mode: 0o644,
            uid: 1000,
            gid: 100,
            size: 5,
            mtime: t(1_700_000_000, 0),
            link: b"",
            dev_major: 0,
            dev_minor: 0,
        }
    }

    fn field(b: &[u8], r: std::ops::Range<usize>) -> &str {
        std::str::from_utf8(&b[r]).unwrap()
    }

    fn pax_of(out: &[u8]) -> &str {
        assert_eq!(out[156], b'x');
        let len = u64::from_str_radix(field(out, 124..135), 8).unwrap() as usize;
        std::str::from_utf8(&out[BLOCK..BLOCK + len]).unwrap()
    }

    #[test]
    fn plain_ustar_header_layout() {
        let mut out = Vec::new();
        encode_header(&file(b"./abc"), &mut out);
        assert_eq!(out.len(), BLOCK, "no pax header needed");
        assert_eq!(&out[..5], b"./abc");
        assert_eq!(field(&out, 100..108), "0000644\0");
        assert_eq!(field(&out, 108..116), "0001750\0");
        assert_eq!(field(&out, 116..124), "0000144\0");
        assert_eq!(field(&out, 124..136), "00000000005\0");
        assert_eq!(field(&out, 136..148), "14524770400\0");
        assert_eq!(out[156], b'0');
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert!(out[265..329].iter().all(|&c| c == 0), "no user/group names");
        assert_eq!(field(&out, 329..345), "0000000\x000000000\0");
        // The checksum is the byte sum with the checksum field read as spaces.
        let mut b = out.clone();
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        assert_eq!(field(&out, 148..156), format!("{sum:06o}\0 "));
    }

    #[test]
    fn pax_records_only_where_ustar_cannot_hold_the_value() {
        let long: Vec<u8> = [b"./".as_slice(), &[b'a'; 120]].concat();
        let mut h = file(&long);
        h.mtime = t(1_700_000_000, 120_000_000);
        h.uid = 3_000_000;
        h.size = 10 << 30;
        let mut out = Vec::new();
        encode_header(&h, &mut out);
        let pax = pax_of(&out);
        let want_path = format!("path={}\n", std::str::from_utf8(&long).unwrap());
        assert_eq!(
            pax,
            format!(
                "{} {want_path}20 size=10737418240\n23 mtime=1700000000.12\n15 uid=3000000\n",
                want_path.len() + 4
            )
        );
        assert_eq!(&out[..13], b"./PaxHeaders/");
        let main = &out[out.len() - BLOCK..];
        assert_eq!(main[156], b'0');
        assert_eq!(
            field(main, 108..116),
            "7777777\0",
            "clamped, pax has the value"
        );
        assert_eq!(field(main, 124..136), "77777777777\0");
        assert_eq!(out.len() % BLOCK, 0);
    }

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        for n in 0..2000 {
            let mut r = Vec::new();
            pax_record(&mut r, "path", &vec![b'x'; n]);
            let sp = r.iter().position(|&c| c == b' ').unwrap();
            let len: usize = std::str::from_utf8(&r[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(t(5, 0)), "5");
        assert_eq!(pax_time(t(5, 1)), "5.000000001");
        assert_eq!(pax_time(t(5, 500_000_000)), "5.5");
        assert_eq!(pax_time(t(-1, 0)), "-1");
        // -2 s + 0.5 s = -1.5 s
        assert_eq!(pax_time(t(-2, 500_000_000)), "-1.5");
        assert_eq!(pax_time(t(-1, 999_999_999)), "-0.000000001");
    }

    #[test]
    fn negative_or_nanosecond_mtimes_go_to_pax() {
        let mut h = file(b"./x");
        h.mtime = t(-100, 0);
        let mut out = Vec::new();
        encode_header(&h, &mut out);
        assert_eq!(pax_of(&out), "14 mtime=-100\n");
        assert_eq!(field(&out[BLOCK * 2..], 136..148), "00000000000\0");
    }

    #[test]
    fn non_utf8_long_names_are_marked_binary() {
        let mut long = b"./".to_vec();
        long.extend([0xffu8; 120]);
        let mut out = Vec::new();
        encode_header(&file(&long), &mut out);
        assert!(pax_of_bytes(&out).starts_with(b"21 hdrcharset=BINARY\n"));
    }

    fn pax_of_bytes(out: &[u8]) -> &[u8] {
        let len = u64::from_str_radix(field(out, 124..135), 8).unwrap() as usize;
        &out[BLOCK..BLOCK + len]
    }

    #[test]
    fn links_and_pax_header_names() {
        let target = vec![b'T'; 150];
        let mut h = file(b"./d/lnk");
        h.kind = Kind::Symlink;
        h.size = 0;
        h.link = &target;
        let mut out = Vec::new();
        encode_header(&h, &mut out);
        assert!(pax_of(&out).starts_with("164 linkpath=TTT"));
        assert_eq!(&out[..16], b"./PaxHeaders/lnk");
        assert_eq!(last_component(b"./d/e/"), b"e");
        assert_eq!(last_component(b"./"), b".");
    }

    #[test]
    fn writer_pads_members_and_records() {
        let mut w = TarWriter::new(Vec::new());
        w.header(&file(b"./abc")).unwrap();
        w.write_all(b"hello").unwrap();
        w.pad().unwrap();
        assert_eq!(w.position(), 2 * BLOCK as u64);
        w.finish().unwrap();
        let out = w.into_inner();
        assert_eq!(out.len(), RECORD);
        assert!(out[2 * BLOCK..].iter().all(|&c| c == 0));
    }
}
