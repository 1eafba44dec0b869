//! Where credentials and settings come from: a snapshot of the environment variables
//! the layer reads, and the AWS settings resolved from it and from `~/.aws/credentials`
//! and `~/.aws/config`, in the AWS CLI's order of precedence.
//!
//! The layer reads the process environment once, through [`Env::from_process`], and
//! nowhere else: tests hand it their own [`Env`] (setting variables in a threaded test
//! binary would race), and OpenDAL's own loading of the environment is switched off, so
//! that what is read is exactly what is documented here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The variables the remote layer reads. No `Debug`: it holds secrets.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

/// Every variable the layer looks at (documented in the module and in the README).
const NAMES: &[&str] = &[
    "HOME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    SSH_VAR,
];

/// The ssh command for `sftp://` (like git's `GIT_SSH_COMMAND` or rsync's `RSYNC_RSH`):
/// words split on blanks, e.g. `ssh -F /etc/backup/ssh_config`. Default `ssh`.
pub const SSH_VAR: &str = "CRYPTBAK_SSH";

impl Env {
    /// The relevant variables of this process.
    pub fn from_process() -> Env {
        Env::from_pairs(
            NAMES
                .iter()
                .filter_map(|n| Some((*n, std::env::var(n).ok()?))),
        )
    }

    /// An environment made of these pairs only (tests, or a caller with its own source).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; an empty value counts as unset (as the AWS tools do).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The ssh command line to start for `sftp://` (never empty).
    pub fn ssh_command(&self) -> Vec<String> {
        let words: Vec<String> = self
            .get(SSH_VAR)
            .unwrap_or("ssh")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if words.is_empty() {
            vec!["ssh".into()]
        } else {
            words
        }
    }
}

/// S3 settings after resolution. No `Debug`: it holds secrets.
pub struct S3Settings {
    pub region: String,
    /// `None`: AWS itself (virtual-hosted-style addressing).
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
    /// Where the keys came from, for messages (`environment`, `profile "x" in …`).
    pub source: String,
}

/// Resolves S3 settings the way the AWS CLI does, for the subset that matters here:
/// - keys: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else
///   the profile (`AWS_PROFILE`, or `default`) in the credentials file, else in the
///   config file;
/// - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else
///   `us-east-1` (what S3-compatible services expect when they ignore regions);
/// - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`.
///
/// Files: `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and
/// `AWS_CONFIG_FILE` (default `~/.aws/config`). `read` returns a file's text, or `None`
/// when it cannot be read (a missing file is normal). The error names what is missing
/// and never holds a value.
pub fn resolve_s3(env: &Env, read: impl Fn(&Path) -> Option<String>) -> Result<S3Settings, String> {
    let home = env.get("HOME").map(PathBuf::from);
    let file = |var: &str, rel: &str| -> Option<PathBuf> {
        env.get(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
    };
    let cred_path = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let conf_path = file("AWS_CONFIG_FILE", ".aws/config");
    let cred = cred_path.as_deref().and_then(&read).map(|t| parse_ini(&t));
    let conf = conf_path.as_deref().and_then(&read).map(|t| parse_ini(&t));
    let explicit_profile = env.get("AWS_PROFILE");
    let profile = explicit_profile.unwrap_or("default");
    // The credentials file names sections `[name]`; the config file `[profile name]`,
    // except `[default]`.
    let cred_sec = cred.as_ref().and_then(|c| c.get(profile));
    let conf_name = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let conf_sec = conf.as_ref().and_then(|c| c.get(&conf_name));
    if explicit_profile.is_some() && cred_sec.is_none() && conf_sec.is_none() {
        return Err(format!(
            "AWS_PROFILE names profile {profile:?}, which is in neither {} nor {}",
            show(&cred_path),
            show(&conf_path)
        ));
    }
    let from_profile = |k: &str| -> Option<String> {
        cred_sec
            .and_then(|s| s.get(k))
            .or_else(|| conf_sec.and_then(|s| s.get(k)))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let (access_key_id, secret_access_key, session_token, source) = match (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => (
            id.to_string(),
            Zeroizing::new(secret.to_string()),
            env.get("AWS_SESSION_TOKEN")
                .map(|t| Zeroizing::new(t.to_string())),
            "the environment".to_string(),
        ),
        (Some(_), None) => {
            return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
        }
        (None, Some(_)) => {
            return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())
        }
        (None, None) => match (
            from_profile("aws_access_key_id"),
            from_profile("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => (
                id,
                Zeroizing::new(secret),
                from_profile("aws_session_token").map(Zeroizing::new),
                format!("profile {profile:?}"),
            ),
            _ => {
                return Err(format!(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put \
                     aws_access_key_id and aws_secret_access_key in profile {profile:?} of {}",
                    show(&cred_path)
                ))
            }
        },
    };
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .map(str::to_string)
        .or_else(|| conf_sec.and_then(|s| s.get("region")).cloned())
        .unwrap_or_else(|| "us-east-1".to_string());
    let endpoint = env
        .get("AWS_ENDPOINT_URL_S3")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .map(str::to_string)
        .or_else(|| conf_sec.and_then(|s| s.get("endpoint_url")).cloned());
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!(
                "endpoint URL {e:?} must start with http:// or https://"
            ));
        }
    }
    Ok(S3Settings {
        region,
        endpoint,
        access_key_id,
        secret_access_key,
        session_token,
        source,
    })
}

fn show(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(no HOME)".into())
}

type Ini = HashMap<String, HashMap<String, String>>;

/// The AWS files' INI dialect: `[section]`, `key = value`, `#`/`;` comments. Indented
/// lines continue a nested block (`s3 =` followed by settings) and are skipped: none of
/// the keys read here live in one.
fn parse_ini(text: &str) -> Ini {
    let mut out = Ini::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let l = line.trim();
        if l.is_empty() || l.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            cur = Some(name);
        } else if let (Some(sec), Some((k, v))) = (&cur, l.split_once('=')) {
            out.get_mut(sec)
                .expect("section inserted")
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(map: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let m: HashMap<PathBuf, String> = map
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        move |p| m.get(p).cloned()
    }

    const CRED: &str = "# comment\n[default]\naws_access_key_id = DEFID\naws_secret_access_key=DEFSECRET\n\n[work]\naws_access_key_id = WORKID\naws_secret_access_key = WORKSECRET\naws_session_token = WORKTOKEN\n";
    const CONF: &str = "[default]\nregion = eu-west-1\n[profile work]\nregion = eu-central-1\nendpoint_url = https://s3.example.net\ns3 =\n  addressing_style = path\n[profile onlyconf]\naws_access_key_id = CID\naws_secret_access_key = CSECRET\n";

    fn home_files() -> impl Fn(&Path) -> Option<String> {
        files(&[("/h/.aws/credentials", CRED), ("/h/.aws/config", CONF)])
    }

    #[test]
    fn environment_wins() {
        let env = Env::from_pairs([
            ("HOME", "/h"),
            ("AWS_ACCESS_KEY_ID", "EID"),
            ("AWS_SECRET_ACCESS_KEY", "ESECRET"),
            ("AWS_SESSION_TOKEN", "ETOKEN"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ]);
        let s = resolve_s3(&env, home_files()).unwrap();
        assert_eq!(s.access_key_id, "EID");
        assert_eq!(s.secret_access_key.as_str(), "ESECRET");
        assert_eq!(
            s.session_token.as_deref().map(String::as_str),
            Some("ETOKEN")
        );
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.source, "the environment");
    }

    #[test]
    fn default_profile_from_files() {
        let s = resolve_s3(&Env::from_pairs([("HOME", "/h")]), home_files()).unwrap();
        assert_eq!(s.access_key_id, "DEFID");
        assert_eq!(s.secret_access_key.as_str(), "DEFSECRET");
        assert!(s.session_token.is_none());
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.endpoint, None);
    }

    #[test]
    fn named_profile_and_overrides() {
        let env = Env::from_pairs([("HOME", "/h"), ("AWS_PROFILE", "work")]);
        let s = resolve_s3(&env, home_files()).unwrap();
        assert_eq!(s.access_key_id, "WORKID");
        assert_eq!(
            s.session_token.as_deref().map(String::as_str),
            Some("WORKTOKEN")
        );
        assert_eq!(s.region, "eu-central-1");
        assert_eq!(s.endpoint.as_deref(), Some("https://s3.example.net"));
        // Environment region and endpoint override the profile's.
        let env = Env::from_pairs([
            ("HOME", "/h"),
            ("AWS_PROFILE", "work"),
            ("AWS_DEFAULT_REGION", "r1"),
            ("AWS_ENDPOINT_URL_S3", "http://e"),
            ("AWS_ENDPOINT_URL", "http://ignored"),
        ]);
        let s = resolve_s3(&env, home_files()).unwrap();
        assert_eq!(s.region, "r1");
        assert_eq!(s.endpoint.as_deref(), Some("http://e"));
        // Keys only in the config file are found too.
        let env = Env::from_pairs([("HOME", "/h"), ("AWS_PROFILE", "onlyconf")]);
        assert_eq!(resolve_s3(&env, home_files()).unwrap().access_key_id, "CID");
    }

    #[test]
    fn file_locations_from_environment() {
        let env = Env::from_pairs([
            ("AWS_SHARED_CREDENTIALS_FILE", "/c"),
            ("AWS_CONFIG_FILE", "/f"),
        ]);
        let s = resolve_s3(&env, files(&[("/c", CRED), ("/f", CONF)])).unwrap();
        assert_eq!(
            (s.access_key_id.as_str(), s.region.as_str()),
            ("DEFID", "eu-west-1")
        );
    }

    /// Each failure says what is missing, and no message holds a secret.
    #[test]
    fn failures_are_clear_and_secret_free() {
        let cases: Vec<(Env, &str)> = vec![
            (Env::from_pairs([("HOME", "/nowhere")]), "no S3 credentials"),
            (Env::default(), "no S3 credentials"),
            (
                Env::from_pairs([("HOME", "/h"), ("AWS_PROFILE", "nope")]),
                "profile \"nope\", which is in neither",
            ),
            (
                Env::from_pairs([("AWS_ACCESS_KEY_ID", "EID")]),
                "AWS_SECRET_ACCESS_KEY is not",
            ),
            (
                Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "ESECRET")]),
                "AWS_ACCESS_KEY_ID is not",
            ),
            (
                Env::from_pairs([
                    ("AWS_ACCESS_KEY_ID", "EID"),
                    ("AWS_SECRET_ACCESS_KEY", "ESECRET"),
                    ("AWS_ENDPOINT_URL", "127.0.0.1:9000"),
                ]),
                "must start with http",
            ),
        ];
        for (env, want) in cases {
            let e = resolve_s3(&env, home_files()).err().expect(want);
            assert!(e.contains(want), "{e:?} should say {want:?}");
            for secret in ["DEFSECRET", "ESECRET", "WORKSECRET", "CSECRET", "WORKTOKEN"] {
                assert!(!e.contains(secret), "{e}");
            }
        }
    }

    #[test]
    fn empty_values_are_unset_and_ssh_default() {
        let env = Env::from_pairs([("AWS_PROFILE", ""), ("HOME", "/h"), (SSH_VAR, "  ")]);
        assert_eq!(
            resolve_s3(&env, home_files()).unwrap().access_key_id,
            "DEFID"
        );
        assert_eq!(env.ssh_command(), ["ssh"]);
        let env = Env::from_pairs([(SSH_VAR, "ssh -F /x/cfg")]);
        assert_eq!(env.ssh_command(), ["ssh", "-F", "/x/cfg"]);
    }
}
