//! The command line as a user meets it: help, man pages, error messages and exit codes.

use std::fs;
use std::path::Path;

use crate::util::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn setup(label: &str) -> (TestDir, std::path::PathBuf, std::path::PathBuf) {
    let t = TestDir::new(label);
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("file"), b"hello").unwrap();
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    (t, src, pw)
}

#[test]
fn man_pages_are_generated_from_the_current_cli() {
    let t = TestDir::new("man");
    run_ok(cryptbak().arg("man").arg(t.path()));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(
        names.iter().any(|n| n == "cryptbak.1") && names.len() >= 3,
        "{names:?}"
    );
    for n in &names {
        let fresh = fs::read(t.path().join(n)).unwrap();
        let old = fs::read(committed.join(n)).unwrap_or_default();
        assert!(
            fresh == old,
            "man/{} is out of date: run `cargo run -- man man` and commit the result",
            n.to_string_lossy()
        );
    }
    // Every page cryptbak(1) refers to exists (there is no cryptbak-help(1)).
    let main = fs::read_to_string(t.path().join("cryptbak.1")).unwrap();
    let listed: Vec<&str> = main
        .lines()
        .filter(|l| l.starts_with("cryptbak\\-"))
        .collect();
    assert!(listed.len() >= 9, "{listed:?}");
    for line in listed {
        let page = line.replace("\\-", "-").replace("(1)", ".1");
        assert!(
            t.path().join(&page).exists(),
            "cryptbak(1) lists {page}, which does not exist"
        );
    }
}

#[test]
fn help_documents_exit_codes_and_completions_work() {
    let out = run_ok(cryptbak().arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("12 wrong password") && text.contains("23 config"),
        "{text}"
    );
    let out = run_ok(cryptbak().args(["completions", "bash"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cryptbak"));
}

#[test]
fn usage_errors_exit_64() {
    let out = run_code(cryptbak().args(["export", "--no-such-flag"]), 64);
    assert!(stderr(&out).contains("--no-such-flag"));
    run_code(cryptbak().arg("export"), 64);
}

/// `--transfers` is the parallelism of a remote BACKUP: with a local one it is a
/// mistake, said before anything is asked or read; 0 is refused by the parser.
#[test]
fn transfers_apply_to_remote_backups_only() {
    let (t, src, pw) = setup("transfers");
    let backup = t.join("backup");
    export_ok(&src, &backup, &pw, &[]);
    for cmd in ["restore", "verify", "ls"] {
        let mut c = cryptbak();
        c.args([cmd, "--transfers", "4", "--passfile"])
            .arg(&pw)
            .arg(&backup);
        if cmd == "restore" {
            c.arg(t.join("out"));
        }
        let out = run_code(&mut c, 64);
        assert!(
            stderr(&out).contains("--transfers applies to an s3:// or sftp:// BACKUP only"),
            "{cmd}: {}",
            stderr(&out)
        );
        let out = run_code(cryptbak().args([cmd, "--transfers", "0"]).arg(&backup), 64);
        assert!(stderr(&out).contains("--transfers"), "{}", stderr(&out));
    }
    assert!(!t.join("out").exists());
}

#[test]
fn wrong_password_exits_12_and_writes_nothing() {
    let (t, src, _) = setup("wrongpw");
    let bad = t.join("bad");
    fs::write(&bad, "not the password\n").unwrap();
    let dest = t.join("dest");
    let out = run_code(
        cryptbak()
            .arg("export")
            .arg("--passfile")
            .arg(&bad)
            .arg(&src)
            .arg(&dest),
        12,
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains("wrong password"), "{err}");
    assert!(
        !err.contains("not the password"),
        "the password leaked into the message: {err}"
    );
    assert!(
        !dest.exists(),
        "something was written with a wrong password"
    );
}

#[test]
fn missing_or_broken_config_exits_23_naming_the_file() {
    let (t, src, pw) = setup("conf");
    let conf = src.join(".gocryptfs.reverse.conf");
    let good = fs::read(&conf).unwrap();

    fs::remove_file(&conf).unwrap();
    let out = run_code(&mut export_cmd(&src, &t.join("d1"), &pw, &[]), 23);
    assert!(
        stderr(&out).contains(".gocryptfs.reverse.conf") && stderr(&out).contains("cryptbak init"),
        "{}",
        stderr(&out)
    );

    // Truncated, and with an unknown feature flag: refused, the file named.
    fs::write(&conf, &good[..good.len() / 2]).unwrap();
    let out = run_code(&mut export_cmd(&src, &t.join("d2"), &pw, &[]), 23);
    assert!(
        stderr(&out).contains(".gocryptfs.reverse.conf"),
        "{}",
        stderr(&out)
    );
    let text = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"AESSIV\"", "\"AESSIV\",\n\t\t\"Teleport\"");
    fs::write(&conf, text).unwrap();
    let out = run_code(&mut export_cmd(&src, &t.join("d3"), &pw, &[]), 23);
    assert!(
        stderr(&out).contains("unknown feature flag \"Teleport\""),
        "{}",
        stderr(&out)
    );

    // A config with an absurd scrypt cost is refused at once, not after hours.
    let text = String::from_utf8(good)
        .unwrap()
        .replace("\"N\": 1024", "\"N\": 1073741824");
    fs::write(&conf, text).unwrap();
    let started = std::time::Instant::now();
    let out = run_code(&mut export_cmd(&src, &t.join("d4"), &pw, &[]), 23);
    assert!(started.elapsed().as_secs() < 10);
    assert!(stderr(&out).contains("scrypt cost"), "{}", stderr(&out));
}

#[test]
fn gocryptfs_single_dash_options_and_masterkey_warning() {
    let (t, src, pw) = setup("dash");
    let dest = t.join("dest");
    run_ok(
        cryptbak()
            .arg("export")
            .arg("-passfile")
            .arg(&pw)
            .arg("-q")
            .arg(&src)
            .arg(&dest),
    );
    assert!(dest.join("gocryptfs.conf").exists());

    let out = run_code(
        cryptbak()
            .args(["export", "--masterkey", "00"])
            .arg(&src)
            .arg(t.join("d2")),
        64,
    );
    assert!(stderr(&out).contains("64 hex digits"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("visible to other users"),
        "no ps warning: {}",
        stderr(&out)
    );
}

#[test]
fn init_refuses_to_overwrite_and_dest_inside_src_is_refused() {
    let (t, src, pw) = setup("init");
    let conf = src.join(".gocryptfs.reverse.conf");
    let before = fs::read(&conf).unwrap();
    let out = run_code(
        cryptbak().args(["init", "--passfile"]).arg(&pw).arg(&src),
        1,
    );
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&conf).unwrap(), before);
    let out = run_code(&mut export_cmd(&src, &src.join("inner"), &pw, &[]), 64);
    assert!(stderr(&out).contains("inside"), "{}", stderr(&out));
    drop(t);
}

#[test]
fn too_long_symlink_is_reported_and_the_rest_exported() {
    let (t, src, pw) = setup("partial");
    // gocryptfs cannot show a target whose encryption exceeds 4096 bytes either.
    std::os::unix::fs::symlink("x".repeat(3100), src.join("toolong")).unwrap();
    let dest = t.join("dest");
    let out = run_code(&mut export_cmd(&src, &dest, &pw, &[]), 2);
    let err = stderr(&out);
    assert!(
        err.contains("toolong") && err.contains("symlink target too long"),
        "{err}"
    );
    assert!(
        err.contains("1 ERROR, the backup is incomplete"),
        "summary does not say the backup is incomplete: {err}"
    );
    assert!(dest.join("gocryptfs.conf").exists());
}

/// The default view is current gocryptfs (2.5 and later): virtual files 10 s after their
/// source; `--compat 2.3` keeps the source's mtime; `--compat 2.5` is the default spelled
/// out. The real releases are compared in tests/it/oracles.rs; this pins the option.
#[test]
fn compat_default_is_2_5_and_2_3_keeps_virtual_file_mtimes() {
    use std::os::unix::fs::MetadataExt;
    let (t, src, pw) = setup("compat");
    fs::write(src.join("L".repeat(200)), b"long").unwrap();
    let mtime = |p: &Path| fs::symlink_metadata(p).unwrap().mtime();
    let find_name_file = |d: &Path| {
        fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".name"))
            .unwrap()
    };
    let compat = |v: &'static str| [std::ffi::OsStr::new("--compat"), std::ffi::OsStr::new(v)];
    let d23 = t.join("d23");
    export_ok(&src, &d23, &pw, &compat("2.3"));
    assert_eq!(mtime(&d23.join("gocryptfs.diriv")), mtime(&src));
    let long23 = find_name_file(&d23);
    assert_eq!(mtime(&long23), mtime(&src.join("L".repeat(200))));
    for (label, args) in [("default", &[][..]), ("2.5", &compat("2.5")[..])] {
        let d = t.join(format!("d-{label}"));
        export_ok(&src, &d, &pw, args);
        assert_eq!(
            mtime(&d.join("gocryptfs.diriv")),
            mtime(&src) + 10,
            "{label}"
        );
        assert_eq!(
            mtime(&find_name_file(&d)),
            mtime(&src.join("L".repeat(200))) + 10,
            "{label}"
        );
        // Contents are the same either way.
        assert_eq!(
            fs::read(d23.join("gocryptfs.diriv")).unwrap(),
            fs::read(d.join("gocryptfs.diriv")).unwrap()
        );
    }
    // Switching views (as --help says) rewrites only the virtual files: here the root's
    // gocryptfs.diriv and the .name file of the long name.
    let out = run_ok(
        cryptbak()
            .args(["export", "-n", "--passfile"])
            .arg(&pw)
            .arg(&src)
            .arg(&d23),
    );
    let changes = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = changes.lines().collect();
    assert_eq!(lines.len(), 2, "{changes}");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with(" [gocryptfs.diriv]") || l.ends_with(" [long name]")),
        "{changes}"
    );
}

#[test]
fn info_and_path_mapping_commands() {
    let (t, src, pw) = setup("paths");
    let long = "N".repeat(190);
    fs::create_dir_all(src.join("a b").join(&long)).unwrap();
    fs::write(src.join("a b").join(&long).join("leaf.txt"), b"leaf").unwrap();
    let dest = t.join("dest");
    export_ok(&src, &dest, &pw, &[]);

    let out = run_ok(cryptbak().arg("info").arg(&dest));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("AESSIV") && text.contains("N=2^10"), "{text}");
    assert!(!text.to_lowercase().contains("encryptedkey"), "{text}");
    let out = run_ok(cryptbak().args(["info", "--json"]).arg(&src));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scrypt"]["log2_N"], 10);
    // cryptbak init wrote it: no gocryptfs release to match, the default view is 2.5.
    assert_eq!(v["created_by"]["program"], "cryptbak", "{v}");
    assert_eq!(v["created_by"]["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert_eq!(v["view"]["default_compat"], "2.5", "{v}");
    assert_eq!(v["view"]["creator_compat"], serde_json::Value::Null, "{v}");
    assert!(
        text.contains("view:     export writes the 2.5 view by default"),
        "{text}"
    );

    let rel = format!("a b/{long}/leaf.txt");
    let out = run_ok(
        cryptbak()
            .args(["encrypt-path", "--passfile"])
            .arg(&pw)
            .arg(&src)
            .arg(&rel),
    );
    let cpath = String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string();
    assert!(cpath.contains("gocryptfs.longname."), "{cpath}");
    assert!(
        dest.join(&cpath).is_file(),
        "encrypt-path gave {cpath}, which is not in the export"
    );
    let out = run_ok(
        cryptbak()
            .args(["decrypt-path", "--passfile"])
            .arg(&pw)
            .arg(&dest)
            .arg(&cpath),
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim_end(), rel);
    // A tampered name does not decrypt (the padding check fails).
    let (head, last) = cpath.rsplit_once('/').unwrap();
    let flipped: String = last.chars().rev().collect();
    run_fail(
        cryptbak()
            .args(["decrypt-path", "--passfile"])
            .arg(&pw)
            .arg(&dest)
            .arg(format!("{head}/{flipped}")),
    );
}

#[test]
fn restore_json_summary_is_parseable() {
    let (t, src, pw) = setup("restore-json");
    let dest = t.join("dest");
    export_ok(&src, &dest, &pw, &[]);
    let out = run_ok(
        cryptbak()
            .args(["restore", "--json", "--passfile"])
            .arg(&pw)
            .arg(&dest)
            .arg(t.join("plain")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["event"], "summary");
    assert_eq!(v["files"], 1, "{v}");
    assert_eq!(v["integrity_errors"], 0);
    assert_eq!(v["layout"], "reverse");
    assert_eq!(fs::read(t.join("plain/file")).unwrap(), b"hello");
}

/// `init` shows the master key as `gocryptfs -init` does (it is the only way in when the
/// password is lost), with what it is for; the key opens the backup; `-q` prints
/// nothing; `--masterkey-file` writes it 0400 instead and never over a file.
#[test]
fn init_shows_the_master_key_and_the_key_opens_the_backup() {
    let w = Work::new("init-key");
    fs::write(w.src.join("f"), b"data").unwrap();
    let init = |src: &Path, extra: &[&str]| {
        run(cryptbak()
            .args(["init", "--scryptn", "10", "--passfile"])
            .arg(&w.pw)
            .args(extra)
            .arg(src))
    };
    let out = init(&w.src, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show_output(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Your master key is:"), "{text}");
    assert!(text.contains("without the password"), "{text}");
    let key = text.lines().nth(2).unwrap().trim().to_string();
    assert_eq!(key.len(), 71, "grouped hex: {key}");
    let (by_pw, by_key) = (w.path("by-pw"), w.path("by-key"));
    export_ok(&w.src, &by_pw, &w.pw, &[]);
    run_ok(
        cryptbak()
            .args(["export", "-q", "--masterkey"])
            .arg(&key)
            .arg(&w.src)
            .arg(&by_key),
    );
    let diffs = crate::tree::compare_trees(&by_pw, &by_key);
    assert!(
        diffs.is_empty(),
        "the printed key is not the config's: {diffs:?}"
    );

    let quiet = w.path("quiet");
    fs::create_dir(&quiet).unwrap();
    let out = init(&quiet, &["-q"]);
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());

    let to_file = w.path("to-file");
    fs::create_dir(&to_file).unwrap();
    let key_file = w.path("key.txt");
    let out = init(&to_file, &["--masterkey-file", key_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show_output(&out));
    assert!(out.stdout.is_empty(), "the key is not printed too");
    let md = fs::metadata(&key_file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o400
    );
    let saved = fs::read_to_string(&key_file).unwrap();
    run_ok(
        cryptbak()
            .args(["export", "-q", "--masterkey"])
            .arg(saved.trim())
            .arg(&to_file)
            .arg(w.path("by-file-key")),
    );
    // An existing key file is never overwritten, and then no config is left either.
    let again = w.path("again");
    fs::create_dir(&again).unwrap();
    let out = init(&again, &["--masterkey-file", key_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show_output(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&key_file).unwrap(), saved);
    assert!(!again.join(".gocryptfs.reverse.conf").exists());
}

/// Messages name the thing and say in words what is wrong with it, never an `os error`
/// alone (issue 16).
#[test]
fn export_messages_say_what_is_wrong_in_words() {
    let w = Work::new("messages");
    init_fast(&w.src, &w.pw);
    let a_file = w.path("a-file");
    fs::write(&a_file, b"x").unwrap();
    for (src, dest, want) in [
        (w.path("missing"), w.path("d1"), "SRC does not exist"),
        (
            a_file.clone(),
            w.path("d2"),
            "SRC is a file, not a directory",
        ),
        (
            w.src.clone(),
            a_file.clone(),
            "DEST is a file, not a directory",
        ),
        // The system's own message, in words, without its "(os error 20)".
        (w.src.clone(), a_file.join("d"), "a-file/d: not a directory"),
    ] {
        let out = run(&mut export_cmd(&src, &dest, &w.pw, &[]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains("os error"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let out = run(&mut export_cmd(
        &w.src,
        &w.path("d3"),
        &w.path("no-passfile"),
        &[],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no-passfile: no such file or directory") && !err.contains("os error"),
        "{err}"
    );
}

/// Reading commands say what a wrong BACKUP is (issue 16): a tar archive given as a
/// directory, a plain file; `info` reads the config inside a tar archive; a `--path`
/// that is not in the backup leaves no DEST behind.
#[test]
fn backup_messages_say_what_the_thing_is() {
    let w = Work::new("backup-messages");
    fs::write(w.src.join("f"), b"data").unwrap();
    init_fast(&w.src, &w.pw);
    let tar = w.path("home.tar");
    run_ok(
        cryptbak()
            .args(["export", "-q", "--passfile"])
            .arg(&w.pw)
            .arg("--tar")
            .arg(&tar)
            .arg(&w.src),
    );
    let plain = w.path("notes.txt");
    fs::write(&plain, b"not a backup").unwrap();
    for cmd in ["ls", "verify"] {
        let out = run(cryptbak().arg(cmd).arg("--passfile").arg(&w.pw).arg(&tar));
        assert_eq!(out.status.code(), Some(1), "{}", show_output(&out));
        assert!(
            stderr(&out).contains("looks like a tar archive: add --tar"),
            "{cmd}: {}",
            stderr(&out)
        );
        let out = run(cryptbak().arg(cmd).arg("--passfile").arg(&w.pw).arg(&plain));
        assert!(
            stderr(&out).contains("is a file, not a directory"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    let out = run_ok(cryptbak().arg("info").arg(&tar));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cryptbak"),
        "info of a tar archive names its creator: {}",
        show_output(&out)
    );
    let export = w.path("backup");
    export_ok(&w.src, &export, &w.pw, &[]);
    let dest = w.path("restored");
    let out = run(cryptbak()
        .args(["restore", "--passfile"])
        .arg(&w.pw)
        .args(["--path", "Documents/nope"])
        .arg(&export)
        .arg(&dest));
    assert_eq!(out.status.code(), Some(1), "{}", show_output(&out));
    assert!(
        stderr(&out).contains("no such path in the backup"),
        "{}",
        stderr(&out)
    );
    assert!(!dest.exists(), "an empty DEST was left behind");
}

/// encrypt-path and decrypt-path try every argument, name each that fails, and say in
/// the exit code whether any did; an absolute path is accepted only inside SRC, and a
/// path that does not exist is an error (issue 16).
#[test]
fn path_tools_are_strict_and_try_every_argument() {
    let w = Work::new("path-tools");
    fs::create_dir(w.src.join("dir")).unwrap();
    fs::write(w.src.join("dir/file"), b"data").unwrap();
    init_fast(&w.src, &w.pw);
    let enc = |paths: &[&std::ffi::OsStr]| {
        run(cryptbak()
            .args(["encrypt-path", "--passfile"])
            .arg(&w.pw)
            .arg(&w.src)
            .args(paths))
    };
    let good = enc(&["dir/file".as_ref()]);
    assert_eq!(good.status.code(), Some(0), "{}", show_output(&good));
    let cpath = String::from_utf8(good.stdout).unwrap().trim().to_string();
    let abs = w.src.join("dir/file");
    let out = enc(&[
        abs.as_os_str(),
        "/etc/passwd".as_ref(),
        "dir/nope".as_ref(),
        "dir/file".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show_output(&out));
    let printed: Vec<String> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        printed,
        [cpath.clone(), cpath.clone()],
        "{}",
        show_output(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("/etc/passwd: is not inside SRC"), "{err}");
    assert!(err.contains("dir/nope: does not exist in SRC"), "{err}");

    let backup = w.path("backup");
    export_ok(&w.src, &backup, &w.pw, &[]);
    let out = run(cryptbak()
        .args(["decrypt-path", "--passfile"])
        .arg(&w.pw)
        .arg(&backup)
        .args(["AAAA", &cpath, "BBBB"]));
    assert_eq!(out.status.code(), Some(2), "{}", show_output(&out));
    assert_eq!(
        String::from_utf8(out.stdout.clone()).unwrap().trim(),
        "dir/file"
    );
    let err = stderr(&out);
    assert!(
        err.contains("AAAA") && err.contains("BBBB"),
        "both failures named: {err}"
    );
}
