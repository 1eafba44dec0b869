//! Replays the seed corpus, the kept (minimized) fuzzing corpus and every saved
//! regression input through the fuzz checks, on stable Rust and without libFuzzer, so
//! `cargo test` here catches a reintroduced bug. A crash found by `cargo fuzz` goes into
//! `regressions/<target>/` once fixed.

use std::fs;
use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
    ("config", cryptbak_fuzz::config),
    ("names", cryptbak_fuzz::names),
    ("content", cryptbak_fuzz::content),
    ("restore_tar", cryptbak_fuzz::restore_tar),
    ("restore_tar_entries", cryptbak_fuzz::restore_tar_entries),
];

fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["seeds", "kept", "regressions"] {
        if let Ok(rd) = fs::read_dir(root.join(dir).join(target)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    files
}

#[test]
fn every_target_has_seeds() {
    for (target, _) in TARGETS {
        assert!(!inputs(target).is_empty(), "no inputs for {target}");
    }
}

#[test]
fn replay_seeds_and_regressions() {
    let mut n = 0;
    for (target, check) in TARGETS {
        for path in inputs(target) {
            let data = fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} fails", path.display());
            n += 1;
        }
    }
    eprintln!("replayed {n} inputs");
}

/// The tar seed gets past authentication with the harness's key, so the fuzzer starts
/// from inputs that reach the restore engine (not only the tar parser).
#[test]
fn tar_seed_reaches_the_restore_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tar = fs::read(root.join("seeds/restore_tar/export.tar")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("d");
    let summary = cryptbak_fuzz::restore_into(&tar, &dest).unwrap();
    assert!(summary.files >= 3, "{summary:?}");
    assert_eq!(summary.integrity_errors, 0, "{summary:?}");
    assert_eq!(fs::read(dest.join("a")).unwrap(), b"hello\n");
}

/// The structured target's oracle fails on what it must catch: a file whose content the
/// harness never encrypted, and a path it never named.
#[test]
fn entries_oracle_can_fail() {
    use cryptbak_fuzz::entries::{check_dest, Made};
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), b"forged").unwrap();
    let mut made = Made::default();
    made.contents.insert(b"real".to_vec());
    let forged = std::panic::catch_unwind(|| check_dest(dir.path(), &made));
    assert!(forged.is_err(), "a path never named passed");
    made.paths.insert(b"a".to_vec());
    let forged = std::panic::catch_unwind(|| check_dest(dir.path(), &made));
    assert!(forged.is_err(), "content never encrypted passed");
    made.contents.insert(b"forged".to_vec());
    check_dest(dir.path(), &made);
}

/// The structured seeds describe entries the restore accepts, so the fuzzer explores
/// the engine rather than only the error paths.
#[test]
fn entries_seeds_restore_something() {
    let mut restored = 0;
    for path in inputs("restore_tar_entries") {
        let data = fs::read(&path).unwrap();
        let Some((tar, _)) = cryptbak_fuzz::entries::build(&data, &cryptbak_fuzz::master()) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d");
        if let Ok(s) = cryptbak_fuzz::restore_into(&tar, &dest) {
            restored += s.files + s.dirs + s.symlinks;
        }
    }
    assert!(restored > 0, "no structured seed restores anything");
}
