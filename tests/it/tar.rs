//! `cryptbak export --tar`: the archive, extracted with GNU tar and with bsdtar, must be
//! exactly the directory export and exactly a `cp -a` copy of a real `gocryptfs -reverse`
//! mount; a real forward gocryptfs mount of it must show the plaintext; the bytes must
//! not depend on the run or the thread count; a closed pipe must be a loud failure.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use crate::gocryptfs::{
    copy_view, init_reverse, record_matrix, require_gocryptfs, Mount, FULL_SET,
};
use crate::tree::{
    build_hardlink_tree, build_many_files, build_varied, compare_trees_with, count_compared,
    format_diffs, name_of_len, scan, Builder, CompareOpts, VariedOpts,
};
use crate::util::{
    cryptbak, esc, export_ok, is_root, os, run, run_code, run_ok, show_output, TestDir, Work,
};

/// The config as the view shows it (the forward mount hides it).
const CONF: &str = "gocryptfs.conf";

impl Work {
    /// An empty directory to extract into.
    fn empty_dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        fs::create_dir(&p).unwrap();
        p
    }

    /// `cryptbak export --passfile PW [extra] --tar TAR SRC`.
    fn tar_cmd(&self, tar: &OsStr, extra: &[&str]) -> Command {
        let mut c = cryptbak();
        c.arg("export")
            .arg("--passfile")
            .arg(&self.pw)
            .args(extra)
            .arg("--tar")
            .arg(tar)
            .arg(&self.src);
        c
    }

    /// `cryptbak init --scryptn 10` of SRC (tests that need no gocryptfs).
    fn init(&self) {
        run_ok(
            cryptbak()
                .args(["init", "-q", "--scryptn", "10", "--passfile"])
                .arg(&self.pw)
                .arg(&self.src),
        );
    }

    /// `--tar` and the directory export of SRC with the options `extra`, and the
    /// archive extracted by GNU tar and by bsdtar: (archive, export, gnu, bsd).
    fn export_both(&self, extra: &[&str]) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        let tar = self.export_tar("view.tar", extra);
        let dest = self.path("dest");
        let extra_os: Vec<&OsStr> = extra.iter().map(OsStr::new).collect();
        export_ok(&self.src, &dest, &self.pw, &extra_os);
        let gnu = self.empty_dir("gnu");
        gnu_extract(&tar, &gnu);
        let bsd = self.empty_dir("bsd");
        bsd_extract(&tar, &bsd);
        (tar, dest, gnu, bsd)
    }

    /// Export into the file `name` (asserting success) and return its path.
    fn export_tar(&self, name: &str, extra: &[&str]) -> PathBuf {
        let t = self.path(name);
        let out = run_ok(&mut self.tar_cmd(t.as_os_str(), extra));
        assert!(out.stdout.is_empty(), "nothing on stdout with --tar FILE");
        t
    }
}

/// `tar -x -f TAR -C INTO` (GNU tar, as root: owners and modes restored); it must
/// not warn about anything but what is silenced here: timestamps in the future or
/// before 1970 (the test trees have both on purpose), and `hdrcharset=BINARY`, which
/// GNU tar 1.34 does not know (it reads such names as raw bytes anyway; bsdtar needs
/// the record to accept them, see docs/tar.md).
fn gnu_extract(tar: &Path, into: &Path) {
    let out = run_ok(
        Command::new("tar")
            .args(["--warning=no-timestamp", "--warning=no-unknown-keyword"])
            .arg("-x")
            .arg("-f")
            .arg(tar)
            .arg("-C")
            .arg(into),
    );
    assert!(
        out.stderr.is_empty(),
        "GNU tar complained\n{}",
        show_output(&out)
    );
}

/// Compares a GNU tar extraction (A) with a bsdtar extraction (B). bsdtar applies the
/// `./` member's mode and owner to the directory it extracts into, but not its mtime
/// (a libarchive behaviour, the same with archives made by GNU tar), so the root's
/// mtime is left out of the comparison.
fn assert_same_as_bsdtar(gnu: &Path, bsd: &Path, what: &str) {
    let opts = CompareOpts {
        ignore: vec![Vec::new()],
        ..Default::default()
    };
    assert_same(gnu, bsd, &opts, what, None);
    let (a, b) = (&scan(gnu)[&Vec::new()], &scan(bsd)[&Vec::new()]);
    assert_eq!(
        (a.mode, a.uid, a.gid),
        (b.mode, b.uid, b.gid),
        "{what}: root directory"
    );
}

/// `bsdtar -x -f TAR -C INTO` (libarchive).
fn bsd_extract(tar: &Path, into: &Path) {
    let out = run_ok(
        Command::new("bsdtar")
            .arg("-x")
            .arg("-f")
            .arg(tar)
            .arg("-C")
            .arg(into),
    );
    assert!(
        out.stderr.is_empty(),
        "bsdtar complained\n{}",
        show_output(&out)
    );
}

/// Panics with a readable list when `a` and `b` differ (names, types, full modes,
/// owners, sizes, mtimes with ns, contents, symlink targets, device numbers).
fn assert_same(a: &Path, b: &Path, opts: &CompareOpts, what: &str, mount: Option<&Mount>) {
    let diffs = compare_trees_with(a, b, opts);
    if diffs.is_empty() {
        if let Some(m) = mount {
            record_matrix(m.oracle(), FULL_SET, count_compared(a, opts), what);
        }
        return;
    }
    let annotate = |p: &[u8]| mount.map(|m| m.describe_cpath(p)).unwrap_or_default();
    panic!(
        "{what}: trees differ (A = {}, B = {})\n{}",
        a.display(),
        b.display(),
        format_diffs(&diffs, 60, &annotate)
    );
}

/// The names of each multiply linked regular file, grouped by inode.
fn link_groups(root: &Path) -> BTreeSet<Vec<Vec<u8>>> {
    let mut groups: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    for (p, m) in scan(root) {
        if m.kind() == "file" && m.nlink > 1 {
            groups.entry((m.dev, m.ino)).or_default().push(p);
        }
    }
    groups.into_values().collect()
}

/// Forward-mounts `cipher` with real gocryptfs and checks it shows `src` exactly
/// (apart from the config file, which is hidden in forward mode).
fn check_forward(cipher: &Path, src: &Path, pw: &Path) {
    let m = Mount::forward(cipher, pw);
    let opts = CompareOpts {
        ignore: vec![b".gocryptfs.reverse.conf".to_vec()],
        ..Default::default()
    };
    let diffs = compare_trees_with(src, m.path(), &opts);
    assert!(
        diffs.is_empty(),
        "forward gocryptfs mount of the extracted archive (B) differs from the plaintext (A):\n{}\n--- gocryptfs log ---\n{}",
        format_diffs(&diffs, 60, &|_| String::new()),
        m.log_text()
    );
    record_matrix(
        m.oracle(),
        FULL_SET,
        count_compared(src, &opts),
        "forward mount of an extracted archive",
    );
}

/// Member names in archive order, read with a minimal ustar/pax parser (`tar -t`
/// output cannot be split reliably: the test trees have names with newlines).
fn members(tar: &Path) -> Vec<Vec<u8>> {
    fn octal(f: &[u8]) -> u64 {
        let s = std::str::from_utf8(f).unwrap().trim_end_matches('\0');
        u64::from_str_radix(s, 8).unwrap()
    }
    fn cstr(f: &[u8]) -> &[u8] {
        &f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())]
    }
    let data = fs::read(tar).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    let mut pax_path: Option<Vec<u8>> = None;
    while off + 512 <= data.len() {
        let h = &data[off..off + 512];
        if h.iter().all(|&c| c == 0) {
            break;
        }
        let size = octal(&h[124..136]) as usize;
        let body = &data[off + 512..off + 512 + size];
        off += 512 + size.next_multiple_of(512);
        if h[156] == b'x' {
            let mut rec = body;
            while !rec.is_empty() {
                let sp = rec.iter().position(|&c| c == b' ').unwrap();
                let len: usize = std::str::from_utf8(&rec[..sp]).unwrap().parse().unwrap();
                let kv = &rec[sp + 1..len - 1];
                if let Some(v) = kv.strip_prefix(b"path=") {
                    pax_path = Some(v.to_vec());
                }
                rec = &rec[len..];
            }
            continue;
        }
        assert!(
            cstr(&h[345..500]).is_empty(),
            "cryptbak uses no ustar prefix"
        );
        out.push(pax_path.take().unwrap_or_else(|| cstr(&h[..100]).to_vec()));
    }
    out
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

/// Extra entries the tar format has to work for, on top of the varied tree: a file
/// large enough to be streamed rather than prefetched, a long path that is not UTF-8
/// (shown as is with plaintext names), and a file with whole-second mtime (a plain
/// ustar header, no pax record).
fn add_tar_extras(src: &Path) {
    let mut b = Builder::new(src, 4242);
    b.rfile(b"big", 2_500_000 + 7);
    b.dir(b"badutf8/deeper\xff");
    let mut long = b"badutf8/deeper\xff/".to_vec();
    long.extend([b'\xfe'; 120]);
    b.rfile(&long, 33);
    b.rfile(b"whole_second", 5);
    let f = File::options()
        .write(true)
        .open(b.p(b"whole_second"))
        .unwrap();
    f.set_times(FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(1_500_000_000)))
        .unwrap();
}

/// The whole round trip for one gocryptfs config variant.
fn tar_matches_reverse_mount(
    name: &str,
    init_args: &[&str],
    plaintextnames: bool,
    has_diriv: bool,
) {
    if !require_gocryptfs(&format!("tar_{name}")) {
        return;
    }
    let w = Work::new(&format!("tar-{name}"));
    build_varied(
        &w.src,
        VariedOpts {
            seed: 21,
            root_gocryptfs_conf: !plaintextnames,
        },
    );
    add_tar_extras(&w.src);
    init_reverse(&w.src, &w.pw, init_args);

    let (tar, dest, x, y) = w.export_both(&[]);

    let m = Mount::reverse(&w.src, &w.pw, &[]);
    let r = copy_view(&m);
    let exact = CompareOpts::default();
    assert_same(
        r.path(),
        &x,
        &exact,
        &format!("[{name}] cp -a of gocryptfs -reverse (A) vs GNU tar -x of --tar (B)"),
        Some(&m),
    );
    m.unmount();
    assert_same(
        &dest,
        &x,
        &exact,
        &format!("[{name}] directory export (A) vs GNU tar -x of --tar (B)"),
        None,
    );
    assert_same_as_bsdtar(&x, &y, &format!("[{name}] GNU tar -x (A) vs bsdtar -x (B)"));
    // The root's own mode (0751 in the varied tree) and mtime came from the `./` member.
    let (sr, xr) = (&scan(&w.src)[&Vec::new()], &scan(&x)[&Vec::new()]);
    assert_eq!(xr.mode & 0o7777, 0o751);
    assert_eq!((xr.mtime, xr.mtime_nsec), (sr.mtime, sr.mtime_nsec));

    check_order(&tar, plaintextnames, has_diriv, &w.src);
    check_forward(&x, &w.src, &w.pw);
}

/// The documented member order: `./` first, then depth-first with a directory before
/// its contents. Per directory: `gocryptfs.diriv` first, each `.name` file right before
/// its long-named entry; with plaintext names the order is the plaintext names' bytewise
/// order (the config file in place of `.gocryptfs.reverse.conf`), which is checked
/// exactly against the source tree.
fn check_order(tar: &Path, plaintextnames: bool, has_diriv: bool, src: &Path) {
    let got = members(tar);
    assert_eq!(got[0], b"./");
    if has_diriv {
        assert_eq!(got[1], b"./gocryptfs.diriv");
    }
    for (i, m) in got.iter().enumerate().skip(1) {
        let body = m.strip_suffix(b"/").unwrap_or(m);
        let slash = body
            .iter()
            .rposition(|&c| c == b'/')
            .unwrap_or_else(|| panic!("member {} is not below ./", esc(m)));
        let parent = &m[..=slash];
        assert!(
            got[..i].iter().any(|o| o == parent),
            "member {} comes before its directory",
            esc(m)
        );
        let next = got.get(i + 1).map(|v| v.as_slice());
        if !plaintextnames && body[slash + 1..].starts_with(b"gocryptfs.longname.") {
            if let Some(h) = m.strip_suffix(b".name") {
                let next = next.map(|n| n.strip_suffix(b"/").unwrap_or(n));
                assert_eq!(next, Some(h), "member after {}", esc(m));
            }
        }
        if has_diriv && m.ends_with(b"/") {
            let diriv = [m.as_slice(), b"gocryptfs.diriv"].concat();
            assert_eq!(next, Some(&diriv[..]), "first member in {}", esc(m));
        }
    }
    // Depth-first: once a directory's subtree is left, it is never re-entered.
    let mut closed: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut open: Vec<Vec<u8>> = vec![b"./".to_vec()];
    for m in &got[1..] {
        while !m.starts_with(open.last().unwrap()) {
            closed.insert(open.pop().unwrap());
        }
        assert!(
            !closed.iter().any(|c| m.starts_with(c)),
            "{} re-enters a finished directory",
            esc(m)
        );
        if m.ends_with(b"/") {
            open.push(m.clone());
        }
    }
    if plaintextnames {
        let mut want = vec![b"./".to_vec()];
        expected_plain_order(src, b".", true, &mut want);
        assert_eq!(
            got.iter().map(|m| esc(m)).collect::<Vec<_>>(),
            want.iter().map(|m| esc(m)).collect::<Vec<_>>(),
            "member order with plaintext names"
        );
    }
}

fn expected_plain_order(dir: &Path, prefix: &[u8], root: bool, out: &mut Vec<Vec<u8>>) {
    let mut names: Vec<Vec<u8>> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(os(&n));
        let md = fs::symlink_metadata(&p).unwrap();
        let shown = if root && n == b".gocryptfs.reverse.conf" {
            CONF.as_bytes().to_vec()
        } else {
            n.clone()
        };
        let member = join(prefix, &shown);
        if md.is_dir() {
            out.push([member.as_slice(), b"/"].concat());
            expected_plain_order(&p, &member, false, out);
        } else {
            out.push(member);
        }
    }
}

#[test]
fn tar_default() {
    tar_matches_reverse_mount("default", &[], false, true);
}

#[test]
fn tar_deterministic_names() {
    tar_matches_reverse_mount("deterministic", &["-deterministic-names"], false, false);
}

#[test]
fn tar_plaintextnames() {
    tar_matches_reverse_mount("plaintextnames", &["-plaintextnames"], true, false);
}

#[test]
fn tar_longnamemax_100() {
    tar_matches_reverse_mount("longnamemax", &["-longnamemax", "100"], false, true);
}

/// Hard links: one member with the data, the other names as tar hard links, whose
/// bytes (IVs of the first name in archive order) match the directory export; the
/// link structure and everything else match a real mount, and gocryptfs decrypts them.
#[test]
fn tar_hard_links() {
    if !require_gocryptfs("tar_hard_links") {
        return;
    }
    let w = Work::new("tar-hardlinks");
    let mut b = build_hardlink_tree(&w.src);
    // `x/f` comes before `x-y/g` depth-first although `x-y` < `x/` bytewise: the
    // first name in archive order, not in path-string order, owns the IVs.
    b.dir(b"x");
    b.dir(b"x-y");
    b.rfile(b"x/f", 5000);
    b.hardlink(b"x/f", b"x-y/g");
    // A large (streamed) file with links, first seen under two long-named directories,
    // so its links need a pax linkpath.
    let d1 = name_of_len("0dir", 180);
    let d2 = join(&d1, &name_of_len("0sub", 190));
    b.dir(&d1);
    b.dir(&d2);
    b.rfile(&join(&d2, b"big"), 1_500_000);
    b.hardlink(&join(&d2, b"big"), b"big_link");
    b.hardlink(&join(&d2, b"big"), b"x/big_link");
    init_reverse(&w.src, &w.pw, &[]);

    let (tar, dest, x, y) = w.export_both(&[]);

    let exact = CompareOpts::default();
    assert_same(
        &dest,
        &x,
        &exact,
        "directory export (A) vs GNU tar -x (B)",
        None,
    );
    assert_same_as_bsdtar(&x, &y, "GNU tar -x (A) vs bsdtar -x (B)");
    let groups = link_groups(&dest);
    assert_eq!(groups.len(), 5, "{groups:?}");
    assert_eq!(link_groups(&x), groups, "hard links after GNU tar -x");
    assert_eq!(link_groups(&y), groups, "hard links after bsdtar -x");

    let listing = run_ok(Command::new("tar").arg("-tvf").arg(&tar));
    let links = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| l.starts_with('h'))
        .count();
    assert_eq!(
        links,
        3 + 1 + 1 + 1 + 2,
        "hard link members\n{}",
        show_output(&listing)
    );

    // Which name's IVs the mount uses depends on lookup history (FORMAT.md §10), so
    // hard-linked contents are compared with the directory export above instead.
    let m = Mount::reverse(&w.src, &w.pw, &[]);
    let r = copy_view(&m);
    let opts = CompareOpts {
        skip_multilink_content: true,
        ..Default::default()
    };
    assert_same(
        r.path(),
        &x,
        &opts,
        "cp -a of the mount (A) vs GNU tar -x (B)",
        Some(&m),
    );
    assert_eq!(
        link_groups(r.path()),
        groups,
        "hard links in cp -a of the mount"
    );
    m.unmount();
    check_forward(&x, &w.src, &w.pw);
}

/// Attributes a FUSE mount cannot show (negative mtimes) or that only matter for the
/// tar encoding (uids and gids beyond ustar's 7 octal digits): GNU tar and bsdtar
/// must rebuild exactly what the directory export writes.
#[test]
fn tar_pax_attributes_match_directory_export() {
    let w = Work::new("tar-pax");
    let root = is_root();
    let mut b = Builder::new(&w.src, 5);
    b.rfile(b"neg_ns", 10);
    b.rfile(b"neg", 10);
    b.rfile(b"far_future", 10);
    b.rfile(b"big_ids", 10);
    b.chown(b"big_ids", 3_000_000, 4_000_000);
    b.dir(b"big_ids_dir");
    b.chown(b"big_ids_dir", 2_097_152, 2_097_151);
    b.symlink(b"long_target", &[b'x'; 500]);
    for (n, t) in [
        (
            &b"neg_ns"[..],
            UNIX_EPOCH - Duration::new(315_619_199, 500_000_000),
        ),
        (b"neg", UNIX_EPOCH - Duration::from_secs(86_400)),
        // Beyond ustar's 11 octal digits of seconds (year 2242).
        (
            b"far_future",
            UNIX_EPOCH + Duration::from_secs(8_589_934_592 + 5),
        ),
    ] {
        let f = File::options().write(true).open(b.p(n)).unwrap();
        f.set_times(FileTimes::new().set_modified(t)).unwrap();
    }
    w.init();

    let (_, dest, x, y) = w.export_both(&[]);
    let exact = CompareOpts::default();
    assert_same(
        &dest,
        &x,
        &exact,
        "directory export (A) vs GNU tar -x (B)",
        None,
    );
    // libarchive reads a negative pax time with a fraction, `-315619199.5`, as
    // -315619199 s + 0.5 s, one second later than the decimal number POSIX specifies
    // and GNU tar reads (GNU tar writes such times the same way we do).
    let neg_ns = scan(&x)
        .into_iter()
        .find(|(_, m)| m.mtime == -315_619_200)
        .map(|(p, _)| p)
        .expect("the file with a negative mtime with nanoseconds");
    let opts = CompareOpts {
        ignore: vec![Vec::new(), neg_ns],
        ..Default::default()
    };
    assert_same(&x, &y, &opts, "GNU tar -x (A) vs bsdtar -x (B)", None);
    let s = scan(&x);
    let mtimes: BTreeSet<(i64, i64)> = s.values().map(|m| (m.mtime, m.mtime_nsec)).collect();
    assert!(mtimes.contains(&(-315_619_200, 500_000_000)), "{mtimes:?}");
    assert!(mtimes.contains(&(-86_400, 0)), "{mtimes:?}");
    assert!(mtimes.contains(&(8_589_934_597, 0)), "{mtimes:?}");
    if root {
        let owners: BTreeSet<(u32, u32)> = s.values().map(|m| (m.uid, m.gid)).collect();
        assert!(owners.contains(&(3_000_000, 4_000_000)), "{owners:?}");
        assert!(owners.contains(&(2_097_152, 2_097_151)), "{owners:?}");
    }
}

/// A size of 8 GiB or more does not fit ustar's 11 octal digits: the header carries a
/// pax `size` record that GNU tar and bsdtar both read. (A sparse archive file, so the
/// test costs no disk space.)
#[test]
fn tar_huge_size_goes_into_pax() {
    use cryptbak::sink::tar_format::{encode_header, Header, Kind, BLOCK, RECORD};
    use cryptbak::view::Time;
    let d = TestDir::new("tar-huge");
    let size: u64 = 9 << 30;
    let mut head = Vec::new();
    encode_header(
        &Header {
            path: b"./huge",
            kind: Kind::File,
            mode: 0o640,
            uid: 0,
            gid: 0,
            size,
            mtime: Time {
                sec: 1_700_000_000,
                nsec: 5,
            },
            link: b"",
            dev_major: 0,
            dev_minor: 0,
        },
        &mut head,
    );
    let p = d.join("huge.tar");
    fs::write(&p, &head).unwrap();
    let end = (head.len() as u64 + size.next_multiple_of(BLOCK as u64) + 2 * BLOCK as u64)
        .next_multiple_of(RECORD as u64);
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(end)
        .unwrap();
    for (prog, want) in [("tar", "9663676416"), ("bsdtar", "9663676416")] {
        let out = run_ok(Command::new(prog).arg("-tvf").arg(&p));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(want) && text.contains("huge") && !text.contains("PaxHeaders"),
            "{prog} -tv\n{}",
            show_output(&out)
        );
    }
}

/// Same tree → same bytes: across runs, with 1 or 4 worker threads, to a file or to
/// stdout, and after the source was read (which may change atimes, never stored).
#[test]
fn tar_is_deterministic() {
    let w = Work::new("tar-determinism");
    let mut b = build_many_files(&w.src, 3, 200);
    b.rfile(b"dir00/big", 3_000_001);
    b.rfile(b"dir01/big", 1_200_000);
    b.hardlink(b"dir00/big", b"dir02/big_link");
    b.hardlink(b"dir01/file0001.dat", b"dir02/small_link");
    w.init();
    let one = fs::read(w.export_tar("j1.tar", &["-j", "1"])).unwrap();
    let stdout = run_ok(&mut w.tar_cmd(OsStr::new("-"), &["-j", "4", "-q"]));
    assert!(stdout.stderr.is_empty(), "{}", show_output(&stdout));
    assert!(
        one == stdout.stdout,
        "-j 1 to a file and -j 4 to stdout differ ({} vs {} bytes)",
        one.len(),
        stdout.stdout.len()
    );
    for e in scan(&w.src).keys() {
        let p = w.src.join(os(e));
        if p.is_file() {
            let mut buf = Vec::new();
            File::open(&p).unwrap().read_to_end(&mut buf).unwrap();
        }
    }
    let again = fs::read(w.export_tar("again.tar", &[])).unwrap();
    assert!(one == again, "a second run differs");
    assert_eq!(one.len() % 10240, 0, "padded to whole 10 KiB records");
    let x = w.empty_dir("x");
    gnu_extract(&w.path("j1.tar"), &x);
}

/// `cryptbak export --tar - SRC | head -c 1000`: cryptbak must fail (exit 1) with one
/// clear line on stderr, not report success for a truncated archive.
#[test]
fn tar_broken_pipe_is_fatal() {
    let w = Work::new("tar-pipe");
    let mut b = Builder::new(&w.src, 3);
    b.rfile(b"a", 200);
    b.rfile(b"big", 20_000_000);
    b.rfile(b"z", 200);
    w.init();
    let err = w.path("stderr");
    let out = run_ok(
        Command::new("bash")
            .arg("-c")
            .arg(r#""$0" export --passfile "$1" --tar - "$2" 2>"$3" | head -c 1000 >/dev/null; echo "${PIPESTATUS[0]}""#)
            .arg(env!("CARGO_BIN_EXE_cryptbak"))
            .arg(&w.pw)
            .arg(&w.src)
            .arg(&err),
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = fs::read_to_string(&err).unwrap();
    assert_eq!(code, "1", "exit code of cryptbak; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{stderr}");
    assert!(
        lines[0].starts_with("cryptbak: error: <stdout>: broken pipe")
            && lines[0].contains("the archive is incomplete"),
        "{stderr}"
    );
}

/// A full disk is fatal too, and `--tar FILE` leaves neither FILE nor a temporary file.
#[test]
fn tar_write_errors_are_fatal() {
    let w = Work::new("tar-full");
    let mut b = Builder::new(&w.src, 4);
    b.rfile(b"big", 3_000_000);
    w.init();
    let out = run_code(&mut w.tar_cmd(OsStr::new("/dev/full"), &[]), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "cryptbak: error: /dev/full: cannot write the archive: no space left on device"
        ) && stderr.lines().count() == 1,
        "{}",
        show_output(&out)
    );
    if !is_root() {
        eprintln!("note: tar_write_errors_are_fatal: not root, the tmpfs part is not run");
        return;
    }
    let small = w.empty_dir("small");
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&small),
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let target = small.join("out.tar");
    let out = run_code(&mut w.tar_cmd(target.as_os_str(), &[]), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no space left on device"),
        "{}",
        show_output(&out)
    );
    let left: Vec<_> = fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "left behind in the full filesystem: {left:?}"
    );
}

/// `--tar FILE`: written under a temporary name and renamed; an existing FILE is
/// replaced; a FILE inside SRC is refused; DEST and --tar exclude each other.
#[test]
fn tar_file_output_and_usage() {
    let w = Work::new("tar-usage");
    let mut b = Builder::new(&w.src, 6);
    b.rfile(b"f", 100);
    w.init();
    let out_dir = w.empty_dir("out");
    let t = out_dir.join("a.tar");
    fs::write(&t, b"old contents").unwrap();
    let out = run_ok(&mut w.tar_cmd(t.as_os_str(), &[]));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("cryptbak: archived 1 file (0.0 MB), 1 directory"),
        "{}",
        show_output(&out)
    );
    let names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a.tar"]);
    assert_ne!(fs::read(&t).unwrap(), b"old contents");

    let inside = w.src.join("backup.tar");
    let out = run_code(&mut w.tar_cmd(inside.as_os_str(), &[]), 64);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must not be inside SRC"),
        "{}",
        show_output(&out)
    );
    assert!(!inside.exists());

    let base = || {
        let mut c = cryptbak();
        c.arg("export").arg("--passfile").arg(&w.pw);
        c
    };
    run_code(base().arg(&w.src), 64);
    run_code(base().arg("--tar").arg(&t).arg(&w.src).arg(w.path("d")), 64);
    run_code(base().args(["--dry-run", "--tar"]).arg(&t).arg(&w.src), 64);
    run_code(base().args(["--json", "--tar", "-"]).arg(&w.src), 64);
}

/// `--tar -` refuses a terminal on stdout (before asking for anything).
#[test]
fn tar_refuses_a_terminal() {
    let w = Work::new("tar-tty");
    fs::write(w.src.join("f"), b"x").unwrap();
    // `script` gives the command a pseudo-terminal as stdin/stdout/stderr.
    let cmd = format!(
        "{} export --passfile {} --tar - {}",
        env!("CARGO_BIN_EXE_cryptbak"),
        w.pw.display(),
        w.src.display()
    );
    let out = run(Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(&cmd)
        .arg("/dev/null"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{}", show_output(&out));
    assert!(
        text.contains("refusing to write a tar archive to a terminal"),
        "{}",
        show_output(&out)
    );
}

/// Files whose size changes between listing and reading, made real with bind mounts of
/// kernel files: a sysfs attribute (`lstat` says 4096 bytes, reading gives a few) and a
/// procfs file (`lstat` says 0, reading gives more). Each is reported with its path,
/// the exit code is 2, and the archive is valid: the shrunk file holds what was read,
/// the grown one its first 0 bytes.
#[test]
fn tar_files_that_change_size_while_read() {
    if !require_gocryptfs("tar_files_that_change_size_while_read") {
        return;
    }
    if !is_root() {
        eprintln!(
            "\n*** SKIPPING tar_files_that_change_size_while_read: bind mounts need root ***\n"
        );
        return;
    }
    let w = Work::new("tar-changing");
    fs::write(w.src.join("ok"), b"fine").unwrap();
    fs::write(w.src.join("shrunk"), b"").unwrap();
    fs::write(w.src.join("grown"), b"").unwrap();
    struct Unmount(Vec<PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = Command::new("umount").arg(p).status();
            }
        }
    }
    let mut guard = Unmount(Vec::new());
    for (from, to) in [
        ("/sys/class/net/lo/mtu", "shrunk"),
        ("/proc/version", "grown"),
    ] {
        let to = w.src.join(to);
        run_ok(Command::new("mount").arg("--bind").arg(from).arg(&to));
        guard.0.push(to);
    }
    let mtu = fs::read(w.src.join("shrunk")).unwrap();
    assert_eq!(fs::metadata(w.src.join("shrunk")).unwrap().len(), 4096);
    assert!(!mtu.is_empty() && mtu.len() < 4096);
    assert_eq!(fs::metadata(w.src.join("grown")).unwrap().len(), 0);
    init_reverse(&w.src, &w.pw, &[]);

    let t = w.path("changing.tar");
    let out = run_code(&mut w.tar_cmd(t.as_os_str(), &[]), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shrunk = format!("{}: file shrank while being read (4096 bytes when listed, {} read); archived the {} bytes read", w.src.join("shrunk").display(), mtu.len(), mtu.len());
    let grown = format!(
        "{}: file grew while being read (it had 0 bytes when listed); archived its first 0 bytes",
        w.src.join("grown").display()
    );
    assert!(
        stderr.contains(&shrunk),
        "want {shrunk}\n{}",
        show_output(&out)
    );
    assert!(
        stderr.contains(&grown),
        "want {grown}\n{}",
        show_output(&out)
    );
    assert!(stderr.contains("2 ERRORS"), "{}", show_output(&out));

    let x = w.empty_dir("x");
    gnu_extract(&t, &x);
    drop(guard);
    let m = Mount::forward(&x, &w.pw);
    assert_eq!(fs::read(m.path().join("shrunk")).unwrap(), mtu);
    assert_eq!(fs::read(m.path().join("grown")).unwrap(), b"");
    assert_eq!(fs::read(m.path().join("ok")).unwrap(), b"fine");
}

/// Excludes select the same entries for the archive as for the directory export.
#[test]
fn tar_respects_excludes() {
    let w = Work::new("tar-exclude");
    let mut b = Builder::new(&w.src, 8);
    b.dir(b"keep");
    b.rfile(b"keep/a", 10);
    b.rfile(b"keep/b.log", 10);
    b.dir(b"drop");
    b.rfile(b"drop/c", 10);
    b.rfile(b"top.log", 10);
    w.init();
    let sel = ["--exclude-wildcard", "*.log", "--exclude", "drop"];
    let (tar, dest, x, y) = w.export_both(&sel);
    assert_same(
        &dest,
        &x,
        &CompareOpts::default(),
        "directory export (A) vs GNU tar -x (B), with excludes",
        None,
    );
    assert_same_as_bsdtar(&x, &y, "GNU tar -x (A) vs bsdtar -x (B), with excludes");
    // root: diriv, conf, keep/ (diriv, a) — nothing else
    assert_eq!(members(&tar).len(), 6, "{:?}", members(&tar));
}

/// SIGINT or SIGTERM during `--tar -`: the stream stops without the end-of-archive
/// marker (and, when it stopped between members, with the header of a member whose data
/// never comes), so the receiving tar reports a truncated archive instead of taking a
/// partial backup for a whole one. Exit code 130. Caught while the output grows, both
/// in the middle of a large file and among many small ones.
#[test]
fn an_interrupted_tar_stream_is_rejected_by_tar() {
    let w = Work::new("tar-interrupted");
    let b = build_many_files(&w.src, 20, 100);
    fs::File::create(b.p(b"zz-big"))
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    crate::util::init_fast(&w.src, &w.pw);
    for (sig, at) in [("INT", 64u64 << 10), ("TERM", 2 << 20), ("INT", 64 << 20)] {
        let out_path = w.path(&format!("out-{sig}-{at}.tar"));
        let caught = (0..5).find_map(|_| {
            let out = fs::File::create(&out_path).unwrap();
            let child = cryptbak()
                .args(["export", "-q", "--passfile"])
                .arg(&w.pw)
                .args(["--tar", "-"])
                .arg(&w.src)
                .stdout(out)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // The stream is under way while the output grows and is not yet whole.
            let busy = || {
                let n = fs::metadata(&out_path).map_or(0, |m| m.len());
                (n > at && n < (500 << 20)).then(|| out_path.clone())
            };
            crate::util::signal_while(child, sig, busy)
        });
        let out = caught.unwrap_or_else(|| panic!("SIG{sig}: never caught the stream mid-way"));
        assert_eq!(
            out.status.code(),
            Some(130),
            "SIG{sig}: {}",
            show_output(&out)
        );
        let listed = Command::new("tar")
            .arg("-tf")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(
            !listed.status.success(),
            "SIG{sig} after {at} bytes: tar -t accepts the interrupted archive\n{}",
            show_output(&listed)
        );
        let bsd = Command::new("bsdtar")
            .arg("-tf")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(!bsd.status.success(), "SIG{sig}: bsdtar -t accepts it");
    }
}
