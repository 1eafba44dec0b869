//! Real servers on 127.0.0.1 for the remote-storage tests, started by the test and
//! killed when the handle drops: `s3s-fs` (an S3 server with signature checking, built
//! from crates.io by `.ci/s3s-fs`) and OpenSSH's `sshd` with a config, host key and
//! client key made for the test. No mocks: the code under test speaks to these exactly
//! as it would to AWS or a backup host.
//!
//! A missing server binary FAILS the test (with the command that installs it): a
//! skipped remote test proves nothing.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cryptbak::remote::{Env, Location, SSH_VAR};

use crate::util::{run_ok, TestDir};

/// A port that was free a moment ago (the server is started on it right away; a
/// server that then fails to bind is retried on another).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until `port` accepts connections, or the child exits, or 20 s pass (a
/// readiness wait, not a timed assertion: a slow start only waits longer).
fn wait_listening(child: &mut Child, port: u16, what: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Some(st) = child.try_wait().expect("wait") {
            eprintln!("{what} exited before listening on {port}: {st}");
            return false;
        }
        if Instant::now() > deadline {
            panic!("{what} did not listen on 127.0.0.1:{port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The s3s-fs binary: `CRYPTBAK_S3S_FS`, else where `.ci/s3s-fs` installs it.
pub fn s3s_fs_bin() -> PathBuf {
    let p = std::env::var_os("CRYPTBAK_S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cryptbak-ci/s3s-fs/bin/s3s-fs"));
    assert!(
        p.is_file(),
        "the S3 test server is not installed at {}: run `bash .ci/s3s-fs` (or set CRYPTBAK_S3S_FS)",
        p.display()
    );
    p
}

pub const ACCESS_KEY: &str = "cryptbak-test-key";
pub const SECRET_KEY: &str = "cryptbak-test-secret-3f9a";

/// An s3s-fs server serving a temporary directory, with one bucket.
pub struct S3Server {
    child: Child,
    pub port: u16,
    /// The server's storage root: bucket `b` is the directory `root/b`, object `k` the
    /// file `root/b/k` (so tests can compare what the server holds with a local tree).
    pub root: PathBuf,
    pub bucket: String,
    _dir: TestDir,
}

impl S3Server {
    pub fn start(label: &str) -> S3Server {
        let bin = s3s_fs_bin();
        let dir = TestDir::new(&format!("s3-{label}"));
        let root = dir.join("root");
        let bucket = "bkt".to_string();
        std::fs::create_dir_all(root.join(&bucket)).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            if wait_listening(&mut child, port, "s3s-fs") {
                return S3Server {
                    child,
                    port,
                    root,
                    bucket,
                    _dir: dir,
                };
            }
            stop(&mut child);
        }
        panic!("s3s-fs did not start on any of 5 ports");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a user would set for this server.
    pub fn env(&self) -> Env {
        self.env_with_secret(SECRET_KEY)
    }

    pub fn env_with_secret(&self, secret: &str) -> Env {
        Env::from_pairs([
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_REGION", "us-east-1"),
        ])
    }

    pub fn location(&self, prefix: &str) -> Location {
        Location::parse(&format!("s3://{}/{prefix}", self.bucket)).unwrap()
    }

    /// Where the object `prefix/key` lives on the server's disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }

    /// Makes `cmd` (rclone) reach this server as the remote `T:`, configured entirely
    /// through the environment. AWS_CA_BUNDLE is removed: rclone 1.60 refuses to start
    /// with it set for a plain-http endpoint. The config file is one that does not
    /// exist (with `/dev/null`, rclone 1.60 silently finds nothing, or waits for a
    /// config password on stdin).
    pub fn rclone_env(&self, cmd: &mut Command) {
        cmd.env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .env("RCLONE_CONFIG", self.root.with_file_name("no-rclone.conf"))
            .env("RCLONE_CONFIG_T_TYPE", "s3")
            .env("RCLONE_CONFIG_T_PROVIDER", "Other")
            .env("RCLONE_CONFIG_T_ACCESS_KEY_ID", ACCESS_KEY)
            .env("RCLONE_CONFIG_T_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("RCLONE_CONFIG_T_ENDPOINT", self.endpoint())
            .env("RCLONE_CONFIG_T_FORCE_PATH_STYLE", "true");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// An OpenSSH server on 127.0.0.1 that accepts one key made for the test, for the
/// current user, with the sftp subsystem. The client side is an ssh config file that
/// the code under test uses through `CRYPTBAK_SSH="ssh -F <config>"`.
pub struct SshServer {
    child: Child,
    pub port: u16,
    /// Where the test keeps its files on the "remote" side (the server serves this
    /// machine's filesystem, so tests can look at what SFTP wrote).
    pub data: PathBuf,
    pub ssh_config: PathBuf,
    dir: TestDir,
}

fn user_name() -> String {
    let out = run_ok(Command::new("id").arg("-un"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "cryptbak-test", "-f"])
            .arg(path),
    );
}

pub fn sshd_bin() -> PathBuf {
    let p = PathBuf::from("/usr/sbin/sshd");
    assert!(
        p.is_file(),
        "OpenSSH's sshd is not installed: apt-get install openssh-server (.ci/run does)"
    );
    p
}

impl SshServer {
    pub fn start(label: &str) -> SshServer {
        let sshd = sshd_bin();
        let dir = TestDir::new(&format!("ssh-{label}"));
        let d = dir.path().to_path_buf();
        let data = d.join("data");
        std::fs::create_dir(&data).unwrap();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        keygen(&d.join("stranger_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd insists on its privilege-separation directory when started as root.
        if is_root_uid() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let user = user_name();
        for _ in 0..5 {
            let port = free_port();
            let cfg = d.join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     StrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                     UsePAM no\nAllowUsers {user}\nSubsystem sftp internal-sftp\n\
                     PidFile {pid}\nLogLevel ERROR\n",
                    hk = d.join("host_key").display(),
                    ak = d.join("authorized_keys").display(),
                    pid = d.join("sshd.pid").display(),
                ),
            )
            .unwrap();
            let mut child = Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start sshd");
            if wait_listening(&mut child, port, "sshd") {
                let ssh_config = d.join("ssh_config");
                write_client_config(&ssh_config, &d, port, &user, "client_key");
                return SshServer {
                    child,
                    port,
                    data,
                    ssh_config,
                    dir,
                };
            }
            stop(&mut child);
        }
        panic!("sshd did not start on any of 5 ports");
    }

    /// `sftp://127.0.0.1:PORT/<data>/<sub>`.
    pub fn location(&self, sub: &str) -> Location {
        Location::parse(&format!(
            "sftp://127.0.0.1:{}{}/{sub}",
            self.port,
            self.data.display()
        ))
        .unwrap()
    }

    pub fn env(&self) -> Env {
        Env::from_pairs([(SSH_VAR, format!("ssh -F {}", self.ssh_config.display()))])
    }

    /// The environment of a client whose key the server does not accept.
    pub fn env_with_stranger_key(&self) -> Env {
        let cfg = self.dir.join("ssh_config_stranger");
        write_client_config(
            &cfg,
            self.dir.path(),
            self.port,
            &user_name(),
            "stranger_key",
        );
        Env::from_pairs([(SSH_VAR, format!("ssh -F {}", cfg.display()))])
    }
}

fn write_client_config(path: &Path, d: &Path, port: u16, user: &str, key: &str) {
    std::fs::write(
        path,
        format!(
            "Host *\n  Port {port}\n  User {user}\n  IdentityFile {id}\n  IdentitiesOnly yes\n  \
             IdentityAgent none\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking accept-new\n  \
             BatchMode yes\n  LogLevel ERROR\n",
            id = d.join(key).display(),
            kh = d.join("known_hosts").display(),
        ),
    )
    .unwrap();
}

fn is_root_uid() -> bool {
    user_name() == "root"
}

impl Drop for SshServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
