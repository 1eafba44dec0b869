//! Remote destinations named by URL: `s3://BUCKET/PREFIX` and
//! `sftp://[USER@]HOST[:PORT]/PATH`. Pure parsing and display, no I/O.
//!
//! The URL is taken literally (no percent-decoding): an S3 key may hold a `%`, and a
//! gocryptfs tree never needs an escape. A URL never carries a secret: a password or an
//! access key in the user part is refused, so that it cannot end up in a process
//! listing, a shell history or an error message; credentials come from where users
//! already keep them (the AWS environment and files, the ssh configuration and agent).

use std::fmt;

/// Where a backup lives on a remote service. Built by [`Location::parse`]; its
/// `Display` gives the URL back (it never holds a secret, so there is none to show).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An S3 bucket (AWS or any S3-compatible service) and a key prefix.
    S3 {
        bucket: String,
        /// Without leading or trailing `/`; empty for the whole bucket.
        prefix: String,
    },
    /// A directory on an SFTP server, reached with the system `ssh`.
    Sftp {
        /// `None`: whatever the ssh configuration says (`User`, or the local user).
        user: Option<String>,
        /// A host name, an IPv4 address or an IPv6 address (without brackets); may
        /// also be a `Host` alias from the ssh configuration.
        host: String,
        /// `None`: whatever the ssh configuration says (`Port`, or 22).
        port: Option<u16>,
        /// The directory. Absolute (`/srv/backup`), or relative to the login directory
        /// when the URL path starts with `/~/` (stored without it; `.` for `/~`).
        path: String,
    },
}

/// Why a string is not a remote location (the message names the part that is wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {msg}")]
pub struct ParseError {
    /// The URL as given, or `s3://…`/`sftp://…` with the user part hidden when it held a
    /// password (so that a secret typed by mistake is not echoed back).
    pub url: String,
    pub msg: String,
}

impl Location {
    /// True when `s` names a remote location (an `s3://` or `sftp://` URL) rather than
    /// a local path: the CLI's first question about a DEST or BACKUP argument.
    pub fn is_url(s: &str) -> bool {
        scheme_of(s).is_some()
    }

    /// Parses `s3://BUCKET[/PREFIX]` or `sftp://[USER@]HOST[:PORT]/PATH`.
    pub fn parse(s: &str) -> Result<Location, ParseError> {
        let err = |msg: &str| ParseError {
            url: redact(s),
            msg: msg.to_string(),
        };
        let Some((scheme, rest)) = scheme_of(s) else {
            return Err(err(
                "not a remote URL: expected s3://BUCKET/PREFIX or sftp://[USER@]HOST[:PORT]/PATH",
            ));
        };
        if let Some(c) = rest.chars().find(|c| c.is_control()) {
            return Err(err(&format!("control character {c:?} in the URL")));
        }
        if rest.contains(['?', '#']) {
            return Err(err(
                "query strings and fragments (`?`, `#`) are not supported",
            ));
        }
        match scheme {
            Scheme::S3 => parse_s3(rest).map_err(|m| err(&m)),
            Scheme::Sftp => parse_sftp(rest).map_err(|m| err(&m)),
        }
    }

    /// The URL scheme, for messages (`s3`, `sftp`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Location::S3 { .. } => "s3",
            Location::Sftp { .. } => "sftp",
        }
    }

    /// How an object below this location is named in messages: the location's URL
    /// with `key` (relative, `/`-separated) appended.
    pub fn display_key(&self, key: &str) -> String {
        let base = self.to_string();
        if key.is_empty() {
            base
        } else if base.ends_with('/') {
            format!("{base}{key}")
        } else {
            format!("{base}/{key}")
        }
    }
}

#[derive(Clone, Copy)]
enum Scheme {
    S3,
    Sftp,
}

fn scheme_of(s: &str) -> Option<(Scheme, &str)> {
    // Schemes are case-insensitive (RFC 3986 §3.1).
    let (head, rest) = s.split_once("://")?;
    if head.eq_ignore_ascii_case("s3") {
        Some((Scheme::S3, rest))
    } else if head.eq_ignore_ascii_case("sftp") {
        Some((Scheme::Sftp, rest))
    } else {
        None
    }
}

/// The URL for messages: as given, unless its authority holds a `:` before an `@`
/// (a password, or an access key pasted as `KEY:SECRET@`), which is replaced by `***`.
fn redact(s: &str) -> String {
    let Some((head, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let (auth, path) = rest.split_at(auth_end);
    match auth.rfind('@') {
        Some(at) if auth[..at].contains(':') => format!("{head}://***@{}{path}", &auth[at + 1..]),
        _ => s.to_string(),
    }
}

fn parse_s3(rest: &str) -> Result<Location, String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.contains('@') {
        return Err(
            "credentials do not belong in an s3:// URL: set AWS_ACCESS_KEY_ID and \
                    AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials (AWS_PROFILE)"
                .into(),
        );
    }
    if bucket.is_empty() {
        return Err("missing bucket name (s3://BUCKET/PREFIX)".into());
    }
    // The rules every S3 service accepts, loosened to what older AWS buckets and
    // S3-compatible services allow (upper case, `_`): anything else is a typo.
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("bucket name {bucket:?} holds {c:?}: a bucket name is letters, digits, `.`, `-` and `_`"));
    }
    if bucket.len() > 255 {
        return Err("bucket name longer than 255 characters".into());
    }
    let prefix = clean_path(prefix, "prefix")?;
    Ok(Location::S3 {
        bucket: bucket.to_string(),
        prefix,
    })
}

/// `a//b/`, `/a/` → `a/b`, `a`; `.` and `..` components are refused (an object store
/// would keep them literally while every file tool resolves them).
fn clean_path(p: &str, what: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" => {}
            "." | ".." => return Err(format!("{what} {p:?} holds a `{c}` component")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn parse_sftp(rest: &str) -> Result<Location, String> {
    let Some(slash) = rest.find('/') else {
        return Err("missing path: sftp://[USER@]HOST[:PORT]/PATH (use /~/DIR for a directory below the login directory)".into());
    };
    let (auth, path) = rest.split_at(slash);
    let (user, hostport) = match auth.rfind('@') {
        Some(at) => (Some(&auth[..at]), &auth[at + 1..]),
        None => (None, auth),
    };
    if let Some(u) = user {
        if u.contains(':') {
            return Err(
                "passwords do not belong in an sftp:// URL: use an ssh key or the ssh agent".into(),
            );
        }
        if u.is_empty() {
            return Err("empty user name before `@`".into());
        }
        check_ssh_word(u, "user name")?;
    }
    let (host, port) = split_host_port(hostport)?;
    check_ssh_word(host, "host")?;
    let path = if path == "/~" || path.starts_with("/~/") {
        let rel = clean_path(&path[2..], "path")?;
        if rel.is_empty() {
            ".".to_string()
        } else {
            rel
        }
    } else {
        format!("/{}", clean_path(path, "path")?)
    };
    Ok(Location::Sftp {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
        path,
    })
}

fn split_host_port(hp: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err("unclosed `[` in the host".into());
        };
        match after {
            "" => (h, None),
            p if p.starts_with(':') => (h, Some(&p[1..])),
            _ => return Err(format!("unexpected {after:?} after the IPv6 address")),
        }
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    if host.is_empty() {
        return Err("missing host name".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// A user or host name goes on the `ssh` command line: one that starts with `-` would be
/// read as an option (`-oProxyCommand=…` runs a command), and blanks or shell
/// metacharacters have no place in either, so refuse them outright.
fn check_ssh_word(w: &str, what: &str) -> Result<(), String> {
    if w.starts_with('-') {
        return Err(format!("{what} {w:?} starts with `-`"));
    }
    if let Some(c) = w.chars().find(|c| {
        c.is_whitespace()
            || matches!(
                c,
                '\'' | '"'
                    | '`'
                    | '$'
                    | ';'
                    | '&'
                    | '|'
                    | '<'
                    | '>'
                    | '\\'
                    | '*'
                    | '('
                    | ')'
                    | '{'
                    | '}'
                    | '%'
                    | '@'
                    | '/'
            )
    }) {
        return Err(format!("{what} {w:?} holds {c:?}"));
    }
    Ok(())
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => {
                f.write_str("sftp://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                if host.contains(':') {
                    write!(f, "[{host}]")?;
                } else {
                    f.write_str(host)?;
                }
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                if path.starts_with('/') {
                    f.write_str(path)
                } else if path == "." {
                    f.write_str("/~")
                } else {
                    write!(f, "/~/{path}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(b: &str, p: &str) -> Location {
        Location::S3 {
            bucket: b.into(),
            prefix: p.into(),
        }
    }

    fn sftp(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Location {
        Location::Sftp {
            user: user.map(Into::into),
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn s3_urls() {
        let cases = [
            ("s3://bkt", s3("bkt", "")),
            ("s3://bkt/", s3("bkt", "")),
            ("s3://bkt/home", s3("bkt", "home")),
            ("S3://bkt//a//b/", s3("bkt", "a/b")),
            ("s3://my.bucket-1/x y/%41", s3("my.bucket-1", "x y/%41")),
        ];
        for (url, want) in cases {
            assert_eq!(Location::parse(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn sftp_urls() {
        let cases = [
            ("sftp://h/srv/b", sftp(None, "h", None, "/srv/b")),
            (
                "sftp://u@h:2222/srv/b/",
                sftp(Some("u"), "h", Some(2222), "/srv/b"),
            ),
            ("sftp://h/", sftp(None, "h", None, "/")),
            ("sftp://h/~/backup", sftp(None, "h", None, "backup")),
            ("sftp://h/~", sftp(None, "h", None, ".")),
            ("sftp://h/~/", sftp(None, "h", None, ".")),
            ("sftp://[::1]:22/x", sftp(None, "::1", Some(22), "/x")),
            (
                "sftp://u@[fe80::1]/x",
                sftp(Some("u"), "fe80::1", None, "/x"),
            ),
            (
                "sftp://127.0.0.1:65535/x",
                sftp(None, "127.0.0.1", Some(65535), "/x"),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(Location::parse(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn display_round_trips() {
        for url in [
            "s3://bkt",
            "s3://bkt/a/b",
            "sftp://h/srv/b",
            "sftp://u@h:2222/srv/b",
            "sftp://[::1]:22/x",
            "sftp://h/~/backup",
            "sftp://h/~",
            "sftp://h/",
        ] {
            let l = Location::parse(url).unwrap();
            assert_eq!(l.to_string(), url);
            assert_eq!(Location::parse(&l.to_string()).unwrap(), l);
        }
        assert_eq!(
            Location::parse("s3://b/p").unwrap().display_key("x/y"),
            "s3://b/p/x/y"
        );
        assert_eq!(
            Location::parse("s3://b").unwrap().display_key("x"),
            "s3://b/x"
        );
        assert_eq!(
            Location::parse("sftp://h/").unwrap().display_key("x"),
            "sftp://h/x"
        );
        assert_eq!(
            Location::parse("s3://b/p").unwrap().display_key(""),
            "s3://b/p"
        );
    }

    /// Each bad URL fails, and the message says what is wrong.
    #[test]
    fn bad_urls_name_the_problem() {
        let cases = [
            ("/local/path", "not a remote URL"),
            ("http://x/y", "not a remote URL"),
            ("s3://", "missing bucket"),
            ("s3:///p", "missing bucket"),
            ("s3://b/a/../c", "`..` component"),
            ("s3://b/./c", "`.` component"),
            ("s3://bu cket/p", "bucket name"),
            ("s3://b/p?versionId=1", "query strings"),
            ("s3://b/p#x", "query strings"),
            ("s3://b/p\n", "control character"),
            ("s3://AKIA:secret@b/p", "credentials do not belong"),
            ("sftp://h", "missing path"),
            ("sftp://h:0/x", "port \"0\""),
            ("sftp://h:70000/x", "port \"70000\""),
            ("sftp://h:ssh/x", "port \"ssh\""),
            ("sftp:///x", "missing host"),
            ("sftp://@h/x", "empty user"),
            ("sftp://u:pw@h/x", "passwords do not belong"),
            ("sftp://-oProxyCommand=touch%20x/p", "starts with `-`"),
            ("sftp://-u@h/p", "starts with `-`"),
            ("sftp://h$(id)/p", "holds '$'"),
            ("sftp://[::1/x", "unclosed"),
            ("sftp://[::1]x/y", "after the IPv6"),
        ];
        for (url, want) in cases {
            let e = Location::parse(url).expect_err(url).to_string();
            assert!(e.contains(want), "{url}: {e:?} should mention {want:?}");
        }
    }

    /// A secret typed into a URL by mistake is not echoed back in the error.
    #[test]
    fn errors_do_not_echo_secrets() {
        for url in ["sftp://u:hunter2@h/x", "s3://AKIAX:hunter2@b/p"] {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("***@"), "{e}");
        }
    }

    #[test]
    fn is_url() {
        assert!(Location::is_url("s3://b"));
        assert!(Location::is_url("SFTP://h/x"));
        assert!(!Location::is_url("./s3://b"));
        assert!(!Location::is_url("/tmp/x"));
        assert!(!Location::is_url("host:path"));
    }
}
