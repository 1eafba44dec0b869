//! The same representative interop checks against each gocryptfs release side by side
//! (2.3, 2.5.1, 2.6.1; tests/it/gocryptfs.rs finds them): the rows of the README's
//! compatibility table. The full interop set (interop_export.rs, exclude.rs, tar.rs, …)
//! runs against the default oracle, 2.6.1.
//!
//! For each release:
//! - its reverse view equals `cryptbak export` with the `--compat` that release needs
//!   (none for 2.5.1 and 2.6.1, so the default view is what is proven; `--compat 2.3`
//!   for 2.3), virtual files' times included, and the other view differs from it in
//!   exactly the virtual files' mtimes (so the check can fail);
//! - it mounts (reverse) a config made by `cryptbak init` and shows our export;
//! - it mounts (forward) our export and shows the source;
//! - `cryptbak restore` reads a `cp -a` and an `rsync -a` copy of its reverse mount,
//!   and forward-mode directories it wrote with each cipher in [`FORWARD_CIPHERS`].
//!
//! Each check prints one `oracle-matrix` line (version, check, entries compared) on
//! stdout; `.ci/oracle-matrix` collects them into the table for the README.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::gocryptfs::{
    copy_view, cp_a, init_forward_by, init_reverse_by, record_matrix, require_oracle, Mount, Oracle,
};
use crate::tree::{
    build_varied, compare_trees_with, count_compared, format_diffs, scan, CompareOpts, VariedOpts,
};
use crate::util::{cryptbak, export_ok, run_ok, show_output, TestDir, Work};

const CONF: &str = ".gocryptfs.reverse.conf";

/// Forward-mode ciphers (label, `gocryptfs -init` flags) whose directories `cryptbak
/// restore` must read, for every release. Adding a cipher is one line here. XChaCha20
/// (`-xchacha`) is tested in reader.rs: its 24-byte nonces make the varied tree's
/// longest symlink target too long for a forward mount to store.
const FORWARD_CIPHERS: &[(&str, &[&str])] = &[
    ("gcm", &[]),
    ("aessiv", &["-aessiv"]),
    ("xchacha", &["-xchacha"]),
];

/// Remove the symlinks whose targets an XChaCha20-Poly1305 filesystem cannot store: its
/// longer nonce leaves room for plaintext targets of fewer bytes than AES's (gocryptfs
/// itself refuses them with ENAMETOOLONG).
fn drop_long_symlinks(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            if std::fs::read_link(e.path()).unwrap().as_os_str().len() > 3000 {
                std::fs::remove_file(e.path()).unwrap();
            }
        } else if ft.is_dir() {
            drop_long_symlinks(&e.path());
        }
    }
}

/// A restore that gives everything back, setuid bits and device nodes included (which
/// restore leaves out unless asked: the format does not authenticate them). These
/// backups are the test's own, and the comparison is with the whole tree.
const RESTORE_ALL: [&str; 2] = ["--keep-setuid", "--devices"];

/// A varied tree per release and check, from a seed that differs per release so the
/// releases are not all shown the very same tree.
fn varied(w: &Work, oracle: Oracle, check: u64) {
    let per_release = Oracle::ALL.iter().position(|&o| o == oracle).unwrap() as u64;
    build_varied(
        &w.src,
        VariedOpts {
            seed: 1400 + 10 * per_release + check,
            root_gocryptfs_conf: true,
        },
    );
}

/// True for a `gocryptfs.diriv` or `gocryptfs.longname.*.name` path of a view.
fn is_virtual(p: &[u8]) -> bool {
    let base = p.rsplit(|&b| b == b'/').next().unwrap_or(p);
    base == b"gocryptfs.diriv"
        || (base.starts_with(b"gocryptfs.longname.") && base.ends_with(b".name"))
}

/// Asserts trees `a` and `b` are identical (tree.rs's comparison: names, type, mode,
/// owner, size, mtime to the nanosecond, contents, symlink targets, rdev) and returns
/// how many entries were compared and how many of them were virtual files.
fn assert_identical(
    a: &Path,
    b: &Path,
    opts: &CompareOpts,
    what: &str,
    mount: Option<&Mount>,
) -> (usize, usize) {
    let diffs = compare_trees_with(a, b, opts);
    if !diffs.is_empty() {
        let annotate = |p: &[u8]| mount.map(|m| m.describe_cpath(p)).unwrap_or_default();
        panic!(
            "{what}: trees differ (A = {}, B = {})\n{}",
            a.display(),
            b.display(),
            format_diffs(&diffs, 60, &annotate)
        );
    }
    let compared = count_compared(a, opts);
    // Views are compared whole (nothing ignored), so every virtual file counts.
    let virt = scan(a).keys().filter(|p| is_virtual(p)).count();
    assert!(
        compared > 100,
        "{what}: only {compared} entries: the tree was not built?"
    );
    (compared, virt)
}

fn matrix(oracle: Oracle, check: &str, entries: usize, note: &str) {
    record_matrix(oracle, check, entries, note);
}

fn cryptbak_init(src: &Path, pw: &Path) {
    run_ok(
        cryptbak()
            .args(["init", "-q", "--scryptn", "10", "--passfile"])
            .arg(pw)
            .arg(src),
    );
}

/// The other `--compat` value than the one `oracle` needs.
fn other_view(oracle: Oracle) -> [&'static OsStr; 2] {
    let v = if oracle.compat_args().is_empty() {
        "2.3"
    } else {
        "2.5"
    };
    [OsStr::new("--compat"), OsStr::new(v)]
}

// ---------------------------------------------------------------------------
// the checks, each for one release

/// Its reverse view (`cp -a` of the mount) equals our export with its `--compat`, the
/// virtual files' times included; the other view differs in exactly those times.
fn reverse_view_equals_export(oracle: Oracle) {
    if !require_oracle("reverse_view_equals_export", oracle) {
        return;
    }
    let w = Work::new(&format!("oracle-{}-view", oracle.version()));
    varied(&w, oracle, 1);
    init_reverse_by(oracle, &w.src, &w.pw, &[]);
    let m = Mount::reverse_by(oracle, &w.src, &w.pw, &[]);
    let r = copy_view(&m);
    let dest = w.path("dest");
    export_ok(&w.src, &dest, &w.pw, &oracle.compat_os());
    let what = format!(
        "gocryptfs {} -reverse (A) vs cryptbak export {} (B)",
        oracle.version(),
        oracle.compat_args().join(" ")
    );
    let (n, virt) = assert_identical(r.path(), &dest, &CompareOpts::default(), &what, Some(&m));

    // The release really shows what FORMAT.md §12.2 says it shows: the times of its
    // virtual files are their source's (2.3) or 10 s later (2.5 and later). Without this,
    // two releases with the same view would make the matrix a tautology.
    let shift = if oracle == Oracle::V2_3 { 0 } else { 10 };
    let view = scan(r.path());
    let src_root = std::fs::symlink_metadata(&w.src).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        view[b"gocryptfs.diriv".as_slice()].mtime,
        src_root.mtime() + shift,
        "gocryptfs {}: root gocryptfs.diriv mtime vs SRC's",
        oracle.version()
    );

    // The other view differs in exactly the virtual files' mtimes: the comparison above
    // would catch a default (or --compat 2.3) that drifted.
    let other = w.path("dest-other");
    export_ok(&w.src, &other, &w.pw, &other_view(oracle));
    let diffs = compare_trees_with(r.path(), &other, &CompareOpts::default());
    let not_mtime: Vec<_> = diffs
        .iter()
        .filter(|d| !d.what.starts_with("mtime differs"))
        .collect();
    assert!(
        not_mtime.is_empty(),
        "other view differs in more than mtimes: {not_mtime:?}"
    );
    let mut shifted: Vec<&[u8]> = diffs.iter().map(|d| d.path.as_slice()).collect();
    shifted.sort();
    let mut virtuals: Vec<&[u8]> = view
        .keys()
        .map(|k| k.as_slice())
        .filter(|p| is_virtual(p))
        .collect();
    virtuals.sort();
    assert_eq!(
        shifted, virtuals,
        "the other view should differ in exactly the virtual files"
    );
    assert!(virt >= 40, "only {virt} virtual files in the view");
    m.unmount();
    matrix(
        oracle,
        "reverse view = export",
        n,
        &format!(
            "{virt} virtual files; {} with the other --compat",
            diffs.len()
        ),
    );
}

/// It mounts (reverse) a config written by `cryptbak init`, and shows our export.
fn mounts_cryptbak_init_config(oracle: Oracle) {
    if !require_oracle("mounts_cryptbak_init_config", oracle) {
        return;
    }
    let w = Work::new(&format!("oracle-{}-init", oracle.version()));
    varied(&w, oracle, 2);
    cryptbak_init(&w.src, &w.pw);
    let m = Mount::reverse_by(oracle, &w.src, &w.pw, &[]);
    let r = copy_view(&m);
    let dest = w.path("dest");
    export_ok(&w.src, &dest, &w.pw, &oracle.compat_os());
    let what = format!(
        "config by cryptbak init: gocryptfs {} -reverse (A) vs cryptbak export (B)",
        oracle.version()
    );
    let (n, _) = assert_identical(r.path(), &dest, &CompareOpts::default(), &what, Some(&m));
    m.unmount();
    matrix(oracle, "reverse mount of a cryptbak init config", n, "");
}

/// It mounts our export (config and all by cryptbak) forward and shows the source.
fn forward_mount_of_export(oracle: Oracle) {
    if !require_oracle("forward_mount_of_export", oracle) {
        return;
    }
    let w = Work::new(&format!("oracle-{}-fwd", oracle.version()));
    varied(&w, oracle, 3);
    cryptbak_init(&w.src, &w.pw);
    let dest = w.path("dest");
    export_ok(&w.src, &dest, &w.pw, &oracle.compat_os());
    let m = Mount::forward_by(oracle, &dest, &w.pw, &[]);
    // The config is the export's gocryptfs.conf, which a forward mount hides.
    let opts = CompareOpts {
        ignore: vec![CONF.as_bytes().to_vec()],
        ..Default::default()
    };
    let what = format!(
        "SRC (A) vs gocryptfs {} forward mount of the export (B)",
        oracle.version()
    );
    let (n, _) = assert_identical(&w.src, m.path(), &opts, &what, None);
    m.unmount();
    matrix(oracle, "forward mount of our export", n, "");
}

/// `cryptbak restore` of a `cp -a` and an `rsync -a` copy of its reverse mount gives the
/// source back.
fn restore_reverse_copies(oracle: Oracle) {
    if !require_oracle("restore_reverse_copies", oracle) {
        return;
    }
    let w = Work::new(&format!("oracle-{}-restore-rev", oracle.version()));
    varied(&w, oracle, 4);
    init_reverse_by(oracle, &w.src, &w.pw, &[]);
    // Writing the config made SRC's mtime "now". rsync compares times in whole seconds
    // (its default --modify-window 0), so a directory whose mtime falls in the second
    // rsync creates its copy keeps the copy's own nanoseconds: move the root's mtime
    // into the past, as every other entry of the tree already is.
    let md = std::fs::symlink_metadata(&w.src).unwrap();
    crate::tree::set_mtime(&w.src, &md, 1_500_000_000, 123_456_789);
    let m = Mount::reverse_by(oracle, &w.src, &w.pw, &[]);
    let copies = TestDir::new("oracle-copies");
    let cp = copies.join("cp");
    std::fs::create_dir(&cp).unwrap();
    let out = cp_a(m.path(), &cp);
    assert!(
        out.status.success(),
        "cp -a of the mount\n{}",
        show_output(&out)
    );
    let rsync = copies.join("rsync");
    let mut from = m.path().as_os_str().to_owned();
    from.push("/");
    run_ok(Command::new("rsync").arg("-a").arg(from).arg(&rsync));
    m.unmount();
    let opts = CompareOpts {
        ignore: vec![CONF.as_bytes().to_vec()],
        ..Default::default()
    };
    let mut counts = Vec::new();
    for (label, copy) in [("cp -a", &cp), ("rsync -a", &rsync)] {
        let plain = w.path(&format!("restored-{}", label.replace(' ', "")));
        run_ok(
            cryptbak()
                .args(["restore", "-q", "--passfile"])
                .arg(&w.pw)
                .args(RESTORE_ALL)
                .arg(copy)
                .arg(&plain),
        );
        let what = format!(
            "SRC (A) vs restore of a {label} copy of a gocryptfs {} reverse mount (B)",
            oracle.version()
        );
        counts.push(assert_identical(&w.src, &plain, &opts, &what, None).0);
    }
    matrix(
        oracle,
        "restore of its reverse copies",
        counts.iter().sum(),
        "cp -a and rsync -a copies",
    );
}

/// `cryptbak restore` reads the forward-mode directories it writes, one per cipher.
fn restore_forward_dirs(oracle: Oracle) {
    if !require_oracle("restore_forward_dirs", oracle) {
        return;
    }
    let mut total = 0;
    let mut labels = Vec::new();
    for (i, &(label, flags)) in FORWARD_CIPHERS.iter().enumerate() {
        let w = Work::new(&format!("oracle-{}-fwd-{label}", oracle.version()));
        varied(&w, oracle, 5 + i as u64);
        if label == "xchacha" {
            drop_long_symlinks(&w.src);
        }
        let cipher = w.path("cipher");
        std::fs::create_dir(&cipher).unwrap();
        init_forward_by(oracle, &cipher, &w.pw, flags);
        let m = Mount::forward_by(oracle, &cipher, &w.pw, &[]);
        let out = cp_a(&w.src, m.path());
        assert!(
            out.status.success(),
            "cp -a into a gocryptfs {} forward mount ({label})\n{}\n--- gocryptfs log ---\n{}",
            oracle.version(),
            show_output(&out),
            m.log_text()
        );
        // What the mount shows is the reference (the forward mount stores everything).
        let shown = copy_view(&m);
        m.unmount();
        let plain = w.path("restored");
        run_ok(
            cryptbak()
                .args(["restore", "-q", "--passfile"])
                .arg(&w.pw)
                .args(RESTORE_ALL)
                .arg(&cipher)
                .arg(&plain),
        );
        let what = format!(
            "gocryptfs {} forward mount ({label}) (A) vs restore of its directory (B)",
            oracle.version()
        );
        total += assert_identical(shown.path(), &plain, &CompareOpts::default(), &what, None).0;
        labels.push(label);
    }
    matrix(
        oracle,
        "restore of its forward dirs",
        total,
        &labels.join(", "),
    );
}

/// `cryptbak info` names the release that wrote a config and the `--compat` that
/// matches its reverse mount.
fn info_names_the_release(oracle: Oracle) {
    if !require_oracle("info_names_the_release", oracle) {
        return;
    }
    let w = Work::new(&format!("oracle-{}-info", oracle.version()));
    init_reverse_by(oracle, &w.src, &w.pw, &[]);
    let out = run_ok(cryptbak().args(["info", "--json"]).arg(&w.src));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut version = oracle.version().to_string();
    if version.matches('.').count() == 1 {
        version.push_str(".0");
    }
    assert_eq!(v["created_by"]["program"], "gocryptfs", "{v}");
    assert_eq!(v["created_by"]["version"], version.as_str(), "{v}");
    let compat = if oracle == Oracle::V2_3 { "2.3" } else { "2.5" };
    assert_eq!(v["view"]["creator_compat"], compat, "{v}");
    assert_eq!(v["view"]["default_compat"], "2.5", "{v}");
    // The text names the option to pass when the default does not match.
    let out = run_ok(cryptbak().arg("info").arg(&w.src));
    let text = String::from_utf8_lossy(&out.stdout);
    let view = text
        .lines()
        .find(|l| l.starts_with("view:"))
        .unwrap_or_else(|| panic!("no view line:\n{text}"));
    assert_eq!(
        view.contains("--compat 2.3 matches its reverse mount"),
        oracle == Oracle::V2_3,
        "{view}"
    );
}

/// One module per release, each with the same tests, so `cargo test oracles::v2_3`
/// runs one release's row and the releases run in parallel.
macro_rules! per_release {
    ($($module:ident => $oracle:expr),* $(,)?) => {$(
        mod $module {
            use super::Oracle;
            #[test]
            fn reverse_view_equals_export() {
                super::reverse_view_equals_export($oracle);
            }
            #[test]
            fn mounts_cryptbak_init_config() {
                super::mounts_cryptbak_init_config($oracle);
            }
            #[test]
            fn forward_mount_of_export() {
                super::forward_mount_of_export($oracle);
            }
            #[test]
            fn restore_reverse_copies() {
                super::restore_reverse_copies($oracle);
            }
            #[test]
            fn restore_forward_dirs() {
                super::restore_forward_dirs($oracle);
            }
            #[test]
            fn info_names_the_release() {
                super::info_names_the_release($oracle);
            }
        }
    )*};
}

per_release! {
    v2_3 => Oracle::V2_3,
    v2_5_1 => Oracle::V2_5_1,
    v2_6_1 => Oracle::V2_6_1,
}
