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

/// The systemd units in examples/systemd pass `systemd-analyze verify` (with the
/// service's program pointed at this build), and the check can fail: a unit whose
/// program does not exist is refused.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = crate::gocryptfs::which("systemd-analyze") else {
        panic!("systemd-analyze is a test requirement (.ci/run installs systemd)");
    };
    let t = TestDir::new("ex-systemd");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd");
    let service = fs::read_to_string(dir.join("cryptbak-export.service")).unwrap();
    let timer = fs::read_to_string(dir.join("cryptbak-export.timer")).unwrap();
    assert!(service.contains("ExecStart=/usr/local/bin/cryptbak export "));
    let verify = |service: &str| {
        fs::write(t.join("cryptbak-export.service"), service).unwrap();
        fs::write(t.join("cryptbak-export.timer"), &timer).unwrap();
        run(Command::new(&analyze)
            .arg("verify")
            .arg(t.join("cryptbak-export.service"))
            .arg(t.join("cryptbak-export.timer")))
    };
    let here = service.replace("/usr/local/bin/cryptbak", env!("CARGO_BIN_EXE_cryptbak"));
    let out = verify(&here);
    assert!(out.status.success(), "{}", show_output(&out));
    let broken = service.replace("/usr/local/bin/cryptbak", "/nonexistent/cryptbak");
    assert!(!verify(&broken).status.success(), "verify accepts anything");
    // The command line is one export accepts: run with SRC and the password file
    // swapped for empty test ones, it fails for the missing config (23), not for usage.
    let pw = write_passfile(t.path());
    let src = t.join("home");
    fs::create_dir(&src).unwrap();
    let line = here
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .replace("/etc/cryptbak/home.pw", pw.to_str().unwrap())
        .replace(" /home ", &format!(" {} ", src.display()))
        .replace("/var/backups/home-crypt", t.join("dest").to_str().unwrap());
    let args: Vec<&str> = line.split_whitespace().collect();
    let out = run(Command::new(args[0]).args(&args[1..]));
    assert_eq!(out.status.code(), Some(23), "{}", show_output(&out));
}

/// The quickstart teaches: it says what it does, its incremental step names the one
/// plaintext file that changed, gocryptfs agrees with the backup, and the example stays
/// where the last lines say, with the commands to look at it.
#[test]
fn quickstart_shows_the_changed_file_by_name_and_keeps_its_example() {
    let t = TestDir::new("ex-quickstart");
    let dir = t.join("example");
    let out = run_ok(example("quickstart.sh").arg(&dir));
    let text = String::from_utf8(out.stdout).unwrap();
    let after_change = text
        .split("Changing one file (Documents/notes.txt)")
        .nth(1)
        .expect("the incremental step is announced");
    let changes: Vec<&str> = after_change
        .lines()
        .filter(|l| l.starts_with('>') || l.starts_with('c') || l.starts_with('*'))
        .take_while(|l| !l.starts_with("=="))
        .collect();
    assert_eq!(changes, [">f.st...... Documents/notes.txt"], "{text}");
    if crate::gocryptfs::require_gocryptfs("quickstart") {
        assert!(text.contains("OK: identical"), "{text}");
    }
    assert!(
        text.contains(&format!("The example is in {}", dir.display())),
        "{text}"
    );
    assert!(text.contains("rm -rf"), "{text}");
    for kept in [
        "home/Documents/notes.txt",
        "backup/gocryptfs.conf",
        "password",
    ] {
        assert!(dir.join(kept).exists(), "{kept} is gone: {text}");
    }
}
