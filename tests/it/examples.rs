//! The scripts in examples/ run as documented (ssh is replaced by a local stand-in).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::tree::compare_trees;
use crate::util::*;

fn example(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    );
    c.env("CRYPTBAK", env!("CARGO_BIN_EXE_cryptbak"));
    c
}

fn source_with_config(t: &TestDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = t.join("home");
    fs::create_dir_all(src.join("Documents/taxes")).unwrap();
    fs::write(src.join("Documents/taxes/2025.csv"), "a,b\n1,2\n").unwrap();
    fs::write(src.join("Documents/notes.txt"), "hello").unwrap();
    fs::write(src.join("big.bin"), vec![42u8; 100_000]).unwrap();
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    // Times in the past: rsync does not copy directory mtimes from the current second.
    run_ok(Command::new("find").arg(&src).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "@1600000000.5",
        "{}",
        "+",
    ]));
    (src, pw)
}

#[test]
fn cron_nightly_exports_and_ships_with_rsync() {
    assert!(
        crate::gocryptfs::which("rsync").is_some(),
        "rsync is a test requirement (.ci/run installs it)"
    );
    let t = TestDir::new("ex-cron");
    let (src, pw) = source_with_config(&t);
    let crypt = t.join("crypt");
    let shipped = t.join("shipped");
    run_ok(
        example("cron-nightly.sh")
            .env("CRYPTBAK_PASSFILE", &pw)
            .arg(&src)
            .arg(&crypt)
            .arg(&shipped),
    );
    let d = compare_trees(&crypt, &shipped);
    assert!(d.is_empty(), "{}", d.join("\n"));
    fs::write(src.join("Documents/notes.txt"), "changed").unwrap();
    run_ok(
        example("cron-nightly.sh")
            .env("CRYPTBAK_PASSFILE", &pw)
            .arg(&src)
            .arg(&crypt)
            .arg(&shipped),
    );
    let fresh = t.join("fresh");
    export_ok(&src, &fresh, &pw, &[]);
    assert!(
        compare_trees(&fresh, &shipped).is_empty(),
        "the shipped copy is not the current backup"
    );
}

#[test]
fn ssh_tar_and_restore_folder() {
    let t = TestDir::new("ex-ssh");
    let (src, pw) = source_with_config(&t);
    // A stand-in `ssh HOST CMD` that runs CMD here.
    let bin = t.join("bin");
    fs::create_dir(&bin).unwrap();
    fs::write(bin.join("ssh"), "#!/bin/sh\nshift\nexec sh -c \"$*\"\n").unwrap();
    fs::set_permissions(bin.join("ssh"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let archive = t.join("home.tar");
    run_ok(
        example("ssh-tar.sh")
            .env("PATH", &path)
            .env("CRYPTBAK_PASSFILE", &pw)
            .arg(&src)
            .arg("backuphost")
            .arg(&archive),
    );
    assert!(archive.is_file() && !t.join("home.tar.new").exists());

    // The archive restores; restore-folder.sh brings back just one folder.
    let restored = t.join("taxes");
    let out = run_ok(
        example("restore-folder.sh")
            .env("CRYPTBAK_PASSFILE", &pw)
            .arg(&{
                let d = t.join("extracted");
                fs::create_dir(&d).unwrap();
                run_ok(
                    Command::new("tar")
                        .arg("-x")
                        .arg("-C")
                        .arg(&d)
                        .arg("-f")
                        .arg(&archive),
                );
                d
            })
            .arg("Documents/taxes")
            .arg(&restored),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2025.csv"),
        "ls output: {}",
        show_output(&out)
    );
    let got = fs::read_to_string(restored.join("2025.csv"))
        .or_else(|_| fs::read_to_string(restored.join("Documents/taxes/2025.csv")));
    assert_eq!(got.unwrap(), "a,b\n1,2\n");
    assert!(!restored.join("Documents/notes.txt").exists() && !restored.join("notes.txt").exists());
}
