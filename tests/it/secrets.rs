//! Secrets (issue 9): the password and the master key never appear in what the
//! program prints, whatever goes wrong; a master key on the command line is warned
//! about; `init` writes its config with mode 0400 through a temporary file and never
//! replaces an existing one.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use cryptbak::format::config::Config;

use crate::util::*;

/// A password nothing else in the output could contain by chance.
const SECRET_PW: &str = "Zq7-leak-canary-PW-4711";
const CONF: &str = ".gocryptfs.reverse.conf";
const PS_WARNING: &str = "visible to other users in `ps`";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// gocryptfs's grouping: 8 groups of 8 digits.
fn grouped(hex: &str) -> String {
    hex.as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("-")
}

/// What must never be printed: every 10-character piece of a password, every
/// 16-digit piece of a key's hex (looked for with dashes and case ignored), and
/// every 12-character piece of its base64 (standard and URL-safe).
struct Secrets {
    passwords: Vec<String>,
    keys: Vec<[u8; 32]>,
}

impl Secrets {
    fn check(&self, out: &Output, what: &str) {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            let folded: String = text
                .chars()
                .filter(|c| *c != '-')
                .flat_map(char::to_lowercase)
                .collect();
            let mut found = Vec::new();
            for pw in &self.passwords {
                let p = pw.as_bytes();
                for w in p.windows(10.min(p.len())) {
                    let w = std::str::from_utf8(w).unwrap();
                    if text.contains(w) {
                        found.push(format!("password piece {w:?}"));
                    }
                }
            }
            for key in &self.keys {
                let h = hex(key);
                for i in 0..=h.len() - 16 {
                    if folded.contains(&h[i..i + 16]) {
                        found.push(format!("key hex piece {}", &h[i..i + 16]));
                    }
                }
                for b64 in [STANDARD.encode(key), URL_SAFE_NO_PAD.encode(key)] {
                    for i in 0..=b64.len() - 12 {
                        if text.contains(&b64[i..i + 12]) {
                            found.push(format!("key base64 piece {}", &b64[i..i + 12]));
                        }
                    }
                }
            }
            assert!(
                found.is_empty(),
                "{what}: {stream} shows a secret ({})\n{}",
                found.join(", "),
                show_output(out)
            );
        }
    }
}

/// A source with a few entries, its config (password `SECRET_PW`), a good backup.
struct Fixture {
    w: Work,
    backup: PathBuf,
    key: [u8; 32],
    secrets: Secrets,
}

impl Fixture {
    fn new(label: &str) -> Fixture {
        let w = Work::new(label);
        fs::write(&w.pw, format!("{SECRET_PW}\n")).unwrap();
        fs::write(w.src.join("file.txt"), b"hello").unwrap();
        fs::create_dir(w.src.join("dir")).unwrap();
        fs::write(w.src.join("dir").join("big"), vec![7u8; 10_000]).unwrap();
        fs::write(w.src.join("N".repeat(200)), b"long name").unwrap();
        std::os::unix::fs::symlink("file.txt", w.src.join("link")).unwrap();
        init_fast(&w.src, &w.pw);
        let cfg = Config::load(&w.src.join(CONF)).unwrap();
        let key = *cfg.unlock(SECRET_PW.as_bytes()).unwrap().as_bytes();
        let backup = w.path("backup");
        export_ok(&w.src, &backup, &w.pw, &[]);
        // A key that is valid hex but wrong: what a user mistyping it would pass.
        let mut wrong = key;
        wrong.reverse();
        Fixture {
            w,
            backup,
            key,
            secrets: Secrets {
                passwords: vec![SECRET_PW.into()],
                keys: vec![key, wrong],
            },
        }
    }

    fn key_hex(&self) -> String {
        hex(&self.key)
    }

    fn wrong_key_hex(&self) -> String {
        hex(&self.secrets.keys[1])
    }

    /// A file in the work area with these bytes.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.w.path(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// An executable shell script in the work area.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.file(name, format!("#!/bin/sh\n{body}\n").as_bytes());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Runs `c` and checks its exit code (`None`: any failure) and its output.
    fn run(&self, what: &str, c: &mut Command, code: Option<i32>) -> Output {
        let out = run(c);
        match code {
            Some(code) => assert_eq!(
                out.status.code(),
                Some(code),
                "{what}: `{}` should exit {code}\n{}",
                describe(c),
                show_output(&out)
            ),
            None => assert!(
                matches!(out.status.code(), Some(c) if c != 0),
                "{what}: `{}` should fail\n{}",
                describe(c),
                show_output(&out)
            ),
        }
        self.secrets.check(&out, what);
        out
    }
}

/// `--passfile FILE`.
fn pf(p: &Path) -> Vec<OsString> {
    vec!["--passfile".into(), p.into()]
}

fn cmd(args: &[&str]) -> Command {
    let mut c = cryptbak();
    c.args(args);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn secrets_password_modes_print_no_secret() {
    let f = Fixture::new("secrets-pw");
    let (src, pw) = (&f.w.src, &f.w.pw);
    let export = |pwargs: &[OsString], dest: &str, extra: &[&str]| {
        let mut c = cmd(&["export"]);
        c.args(pwargs).args(extra).arg(src).arg(f.w.path(dest));
        c
    };

    let good = pf(pw);
    f.run("export -v", &mut export(&good, "d-v", &["-v"]), Some(0));
    f.run(
        "export --json",
        &mut export(&good, "d-json", &["--json"]),
        Some(0),
    );
    f.run("export -n", &mut export(&good, "backup", &["-n"]), Some(0));
    let mut tar = cmd(&["export", "--passfile"]);
    tar.arg(pw).args(["--tar", "-"]).arg(src);
    f.run("export --tar -", &mut tar, Some(0));

    let wrong = f.file("wrong-pw", format!("{SECRET_PW}x\n").as_bytes());
    let out = f.run(
        "wrong password",
        &mut export(&pf(&wrong), "d1", &[]),
        Some(12),
    );
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    // The right password on the ignored second line, the wrong one first.
    let second = f.file("second-line", format!("nope\n{SECRET_PW}\n").as_bytes());
    let out = f.run(
        "password on line 2",
        &mut export(&pf(&second), "d2", &[]),
        Some(12),
    );
    assert!(
        stderr(&out).contains("only the first line"),
        "{}",
        stderr(&out)
    );
    let long = f.file("long", SECRET_PW.repeat(100).as_bytes());
    f.run(
        "too long passfile",
        &mut export(&pf(&long), "d3", &[]),
        None,
    );
    let empty = f.file("empty", b"\nsecond\n");
    f.run(
        "empty first line",
        &mut export(&pf(&empty), "d4", &[]),
        None,
    );
    f.run(
        "missing passfile",
        &mut export(&pf(&f.w.path("nope")), "d5", &[]),
        None,
    );
    let dir = f.w.path("backup");
    f.run(
        "passfile is a directory",
        &mut export(&pf(&dir), "d6", &[]),
        None,
    );
    // Two passfiles are concatenated: halves of the password.
    let (a, b) = SECRET_PW.split_at(9);
    let (fa, fb) = (
        f.file("half-a", a.as_bytes()),
        f.file("half-b", b.as_bytes()),
    );
    let mut two = pf(&fa);
    two.extend(pf(&fb));
    f.run("two passfiles", &mut export(&two, "d7", &["-v"]), Some(0));

    // --extpass: a program that prints the password, then fails; one that succeeds.
    let failing = f.script("ext-fail", &format!("echo '{SECRET_PW}'; exit 3"));
    let mut c = cmd(&["export", "--extpass"]);
    c.arg(&failing).arg(src).arg(f.w.path("d8"));
    let out = f.run("extpass fails", &mut c, None);
    assert!(
        stderr(&out).contains("--extpass program failed"),
        "{}",
        stderr(&out)
    );
    let ok = f.script("ext-ok", &format!("printf '%s\\n' '{SECRET_PW}'"));
    let mut c = cmd(&["export", "-v", "--extpass"]);
    c.arg(&ok).arg(src).arg(f.w.path("d9"));
    f.run("extpass ok", &mut c, Some(0));
    let wrong_ext = f.script("ext-wrong", &format!("printf '%s\\n' '{SECRET_PW}x'"));
    let mut c = cmd(&["export", "--extpass"]);
    c.arg(&wrong_ext).arg(src).arg(f.w.path("d10"));
    f.run("extpass wrong password", &mut c, Some(12));
    let mut c = cmd(&["export", "--extpass"]);
    c.arg(f.w.path("no-such-program"))
        .arg(src)
        .arg(f.w.path("d11"));
    f.run("extpass missing", &mut c, None);

    // The other commands, right and wrong.
    let restore = |pwfile: &Path, from: &Path, to: &str, extra: &[&str]| {
        let mut c = cmd(&["restore", "--passfile"]);
        c.arg(pwfile).args(extra).arg(from).arg(f.w.path(to));
        c
    };
    f.run(
        "restore --path dir",
        &mut restore(pw, &f.backup, "r1", &["--path", "dir"]),
        Some(0),
    );
    f.run(
        "restore --json",
        &mut restore(pw, &f.backup, "r2", &["--json"]),
        Some(0),
    );
    f.run(
        "restore wrong pw",
        &mut restore(&wrong, &f.backup, "r3", &[]),
        Some(12),
    );
    f.run(
        "restore no backup",
        &mut restore(pw, &f.w.path("nope"), "r4", &[]),
        None,
    );
    let corrupt = corrupted_copy(&f);
    f.run(
        "restore corrupt",
        &mut restore(pw, &corrupt, "r5", &[]),
        Some(26),
    );
    let mut c = cmd(&["ls", "-r", "--passfile"]);
    f.run("ls", c.arg(pw).arg(&f.backup), Some(0));
    let mut c = cmd(&["ls", "--passfile"]);
    f.run("ls wrong pw", c.arg(&wrong).arg(&f.backup), Some(12));
    let mut c = cmd(&["verify", "--passfile"]);
    f.run("verify", c.arg(pw).arg(&f.backup), Some(0));
    let mut c = cmd(&["verify", "--passfile"]);
    f.run(
        "verify --source",
        c.arg(pw).arg("--source").arg(src).arg(&f.backup),
        Some(0),
    );
    let mut c = cmd(&["verify", "--passfile"]);
    f.run("verify corrupt", c.arg(pw).arg(&corrupt), Some(26));
    let mut c = cmd(&["verify", "--passfile"]);
    f.run("verify wrong pw", c.arg(&wrong).arg(&f.backup), Some(12));
    f.run("info", cmd(&["info"]).arg(&f.backup), Some(0));
    f.run("info --json", cmd(&["info", "--json"]).arg(src), Some(0));
    let mut c = cmd(&["encrypt-path", "--passfile"]);
    f.run("encrypt-path", c.arg(pw).arg(src).arg("dir/big"), Some(0));
    let mut c = cmd(&["decrypt-path", "--passfile"]);
    f.run(
        "decrypt-path bad",
        c.arg(pw).arg(&f.backup).arg("AAAA"),
        None,
    );
    let mut c = cmd(&["init", "--scryptn", "10", "--passfile"]);
    f.run("init over existing", c.arg(pw).arg(src), Some(1));
    let fresh = f.w.path("fresh");
    fs::create_dir(&fresh).unwrap();
    let mut c = cmd(&["init", "--scryptn", "10", "--passfile"]);
    f.run("init", c.arg(pw).arg(&fresh), Some(0));
    // No terminal and no password option: an error, not a hang.
    f.run(
        "no password source",
        cmd(&["export"]).arg(src).arg(f.w.path("d12")),
        Some(64),
    );
}

/// A copy of the fixture's backup with one content byte of `dir/big` flipped.
fn corrupted_copy(f: &Fixture) -> PathBuf {
    let copy = f.w.path("corrupt");
    run_ok(Command::new("cp").arg("-a").arg(&f.backup).arg(&copy));
    let out = run_ok(
        cryptbak()
            .args(["encrypt-path", "--passfile"])
            .arg(&f.w.pw)
            .arg(&f.w.src)
            .arg("dir/big"),
    );
    let rel = String::from_utf8(out.stdout).unwrap();
    let p = copy.join(rel.trim_end());
    let mut bytes = fs::read(&p).unwrap();
    bytes[100] ^= 1;
    fs::write(&p, bytes).unwrap();
    copy
}

#[test]
fn secrets_masterkey_modes_print_no_secret_and_warn_only_on_the_command_line() {
    let f = Fixture::new("secrets-mk");
    let src = &f.w.src;
    let key = f.key_hex();
    let upper_grouped = grouped(&key).to_uppercase();
    let stdin_file = |name: &str, text: &str| {
        let p = f.file(name, text.as_bytes());
        fs::File::open(p).unwrap()
    };
    let warned = |out: &Output| stderr(out).contains(PS_WARNING);

    // On the command line: works, and warns (both spellings).
    for (i, (opt, k)) in [
        ("--masterkey", key.clone()),
        ("--masterkey", upper_grouped.clone()),
        ("-masterkey", grouped(&key)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = cmd(&["export", "-v", opt, &k]);
        c.arg(src).arg(f.w.path(&format!("m{i}")));
        let out = f.run(&format!("export {opt} (form {i})"), &mut c, Some(0));
        assert!(
            warned(&out),
            "no ps warning for {opt}:\n{}",
            show_output(&out)
        );
        assert!(
            stderr(&out).contains("--masterkey=stdin"),
            "{}",
            stderr(&out)
        );
    }
    // Malformed keys: usage error, no echo (and still the warning).
    let mut bad_digit = key.clone();
    bad_digit.replace_range(63..64, "g");
    for (what, k) in [
        ("non-hex digit", bad_digit),
        ("63 digits", key[..63].to_string()),
        ("65 digits", format!("{key}0")),
    ] {
        let mut c = cmd(&["export", "--masterkey", &k]);
        c.arg(src).arg(f.w.path("bad"));
        let out = f.run(&format!("--masterkey {what}"), &mut c, Some(64));
        assert!(stderr(&out).contains("64 hex digits"), "{}", stderr(&out));
        assert!(warned(&out), "{}", stderr(&out));
    }
    // A valid but wrong key: refused by the existing backup (its gocryptfs.conf, equal
    // to the source's, says nothing about a key given with --masterkey); the right key
    // is accepted there.
    let mut c = cmd(&["export", "--masterkey", &f.wrong_key_hex()]);
    c.arg(src).arg(&f.backup);
    f.run("export wrong key into backup", &mut c, None);
    let mut c = cmd(&["export", "--masterkey", &key]);
    c.arg(src).arg(&f.backup);
    f.run("export right key into backup", &mut c, Some(0));
    let mut c = cmd(&["restore", "--masterkey", &f.wrong_key_hex()]);
    c.arg(&f.backup).arg(f.w.path("r-wrong"));
    f.run("restore wrong key", &mut c, None);
    // Used together with a password option: clap's usage error.
    let mut c = cmd(&["export", "--masterkey", &key, "--passfile"]);
    c.arg(&f.w.pw).arg(src).arg(f.w.path("both"));
    f.run("--masterkey with --passfile", &mut c, Some(64));
    let mut c = cmd(&["export", "--masterkey", &key, "--masterkey", &key]);
    c.arg(src).arg(f.w.path("twice"));
    f.run("--masterkey twice", &mut c, Some(64));

    // From stdin: works, and no warning; a bad line is refused without echo.
    for (i, line) in [
        format!("{key}\n"),
        format!("{}\r\n", grouped(&key)),
        key.clone(),
    ]
    .iter()
    .enumerate()
    {
        let mut c = cmd(&["export", "-v", "--masterkey=stdin"]);
        c.arg(src).arg(f.w.path(&format!("s{i}")));
        c.stdin(stdin_file(&format!("key{i}"), line));
        let out = f.run(&format!("--masterkey=stdin (form {i})"), &mut c, Some(0));
        assert!(!warned(&out), "warned for stdin:\n{}", show_output(&out));
    }
    let mut c = cmd(&["export", "--masterkey", "stdin"]);
    c.arg(src).arg(f.w.path("s-bad"));
    c.stdin(stdin_file("badkey", &format!("{}\n", &key[1..])));
    let out = f.run("--masterkey stdin, bad", &mut c, Some(64));
    assert!(!warned(&out), "{}", stderr(&out));
    let mut c = cmd(&["export", "--masterkey=stdin"]);
    c.arg(src).arg(f.w.path("s-empty")).stdin(Stdio::null());
    f.run("--masterkey=stdin, empty", &mut c, Some(64));

    // No warning without --masterkey at all.
    let out = f.run(
        "passfile",
        &mut export_cmd(src, &f.w.path("p"), &f.w.pw, &[]),
        Some(0),
    );
    assert!(!warned(&out), "{}", stderr(&out));

    // The other commands with the key, on the command line and from stdin.
    for from_stdin in [false, true] {
        let with_key = |args: &[&str]| {
            let mut c = cryptbak();
            c.arg(args[0]);
            if from_stdin {
                c.arg("--masterkey=stdin")
                    .stdin(stdin_file("k", &format!("{key}\n")));
            } else {
                c.args(["--masterkey", &key]);
            }
            c.args(&args[1..]);
            c
        };
        let tag = if from_stdin { "stdin" } else { "argv" };
        let backup = f.backup.to_str().unwrap();
        let srcs = src.to_str().unwrap();
        let corrupt = corrupted_copy_once(&f);
        let r = f.w.path(&format!("r-{tag}"));
        let cases: Vec<(Vec<&str>, Option<i32>)> = vec![
            (vec!["restore", backup, r.to_str().unwrap()], Some(0)),
            (vec!["ls", "-r", backup], Some(0)),
            (vec!["verify", "--json", backup], Some(0)),
            (vec!["verify", "--source", srcs, backup], Some(0)),
            (vec!["verify", corrupt.to_str().unwrap()], Some(26)),
            (vec!["encrypt-path", srcs, "file.txt"], Some(0)),
            (vec!["decrypt-path", backup, "nonsense"], None),
        ];
        for (args, code) in cases {
            let out = f.run(
                &format!("{} --masterkey {tag}", args[0]),
                &mut with_key(&args),
                code,
            );
            assert_eq!(warned(&out), !from_stdin, "{}", show_output(&out));
        }
    }
}

/// The fixture's corrupted copy, made on first use.
fn corrupted_copy_once(f: &Fixture) -> PathBuf {
    let p = f.w.path("corrupt");
    if p.exists() {
        p
    } else {
        corrupted_copy(f)
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `cryptbak init` run under umask `mask` (through sh, which sets it).
fn init_with_umask(mask: &str, pw: &Path, extra: &[&Path], src: &Path) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {mask}; exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_cryptbak"))
        .args(["init", "-q", "--scryptn", "10", "--passfile"])
        .arg(pw);
    for p in extra {
        c.arg("--config").arg(p);
    }
    c.arg(src).stdin(Stdio::null());
    run(&mut c)
}

#[test]
fn secrets_init_writes_0400_leaves_no_temp_and_never_overwrites() {
    let w = Work::new("secrets-init");
    // Mode 0400 whatever the umask (the file is created with it, not chmod'ed later).
    for (i, mask) in ["000", "022", "077"].iter().enumerate() {
        let dir = w.path(&format!("src{i}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a"), b"a").unwrap();
        let out = init_with_umask(mask, &w.pw, &[], &dir);
        assert!(out.status.success(), "{}", show_output(&out));
        let conf = dir.join(CONF);
        assert_eq!(mode(&conf), 0o400, "umask {mask}: mode {:o}", mode(&conf));
        assert!(fs::symlink_metadata(&conf).unwrap().is_file());
        assert_eq!(
            names(&dir),
            vec![CONF.to_string(), "a".into()],
            "temp file left"
        );
        assert_eq!(
            fs::metadata(&conf).unwrap().nlink(),
            1,
            "temp name still linked"
        );
        Config::load(&conf).unwrap();
    }

    // Never overwritten: an existing config, any other file, a dangling symlink.
    let src = w.path("src0");
    let conf = src.join(CONF);
    let before = fs::read(&conf).unwrap();
    let out = run_code(
        cryptbak()
            .args(["init", "--scryptn", "10", "--passfile"])
            .arg(&w.pw)
            .arg(&src),
        1,
    );
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&conf).unwrap(), before);
    assert_eq!(mode(&conf), 0o400);

    let precious = w.path("precious.conf");
    fs::write(&precious, b"precious").unwrap();
    fs::set_permissions(&precious, fs::Permissions::from_mode(0o644)).unwrap();
    let out = init_with_umask("022", &w.pw, &[&precious], &src);
    assert_eq!(out.status.code(), Some(1), "{}", show_output(&out));
    assert_eq!(fs::read(&precious).unwrap(), b"precious");
    assert_eq!(mode(&precious), 0o644);

    let link = w.path("link.conf");
    let target = w.path("target.conf");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = init_with_umask("022", &w.pw, &[&link], &src);
    assert_eq!(out.status.code(), Some(1), "{}", show_output(&out));
    assert!(!target.exists(), "init wrote through a dangling symlink");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // --config elsewhere: only the config appears there.
    let cdir = w.path("confdir");
    fs::create_dir(&cdir).unwrap();
    let out = init_with_umask("000", &w.pw, &[&cdir.join("my.conf")], &src);
    assert!(out.status.success(), "{}", show_output(&out));
    assert_eq!(names(&cdir), vec!["my.conf".to_string()]);
    assert_eq!(mode(&cdir.join("my.conf")), 0o400);
}

/// On a full filesystem the config cannot be written: then no config may appear at
/// all (not an empty or truncated one, which a direct write would leave), and no
/// temporary file either. Needs root for the tmpfs mount; skips loudly without it.
#[test]
fn secrets_init_on_a_full_filesystem_leaves_no_partial_config() {
    if !is_root() {
        eprintln!("SKIPPED secrets_init_on_a_full_filesystem_leaves_no_partial_config: needs root (tmpfs)");
        return;
    }
    let w = Work::new("secrets-full");
    let mnt = w.path("mnt");
    fs::create_dir(&mnt).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&mnt),
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    // Fill it up.
    let fill = mnt.join("fill");
    {
        use std::io::Write;
        let mut f = fs::File::create(&fill).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
    let conf = mnt.join("c.conf");
    let out = init_with_umask("022", &w.pw, &[&conf], &w.src);
    assert_eq!(
        out.status.code(),
        Some(1),
        "init on a full fs\n{}",
        show_output(&out)
    );
    assert_eq!(
        names(&mnt),
        vec!["fill".to_string()],
        "a config or temp file was left"
    );
    // With room again, the same command works.
    fs::remove_file(&fill).unwrap();
    let out = init_with_umask("022", &w.pw, &[&conf], &w.src);
    assert!(out.status.success(), "{}", show_output(&out));
    assert_eq!(names(&mnt), vec!["c.conf".to_string()]);
    assert_eq!(mode(&conf), 0o400);
}
