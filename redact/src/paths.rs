//! Files whose contents are never captured, as glob patterns over absolute paths.
//!
//! Glob syntax: `*` and `?` within one path component, `**` across components,
//! `[abc]` classes, `{a,b}` alternatives. `~/x` means `x` under any directory (a home
//! directory is the target's, not the daemon's, so any directory is the safe reading);
//! a pattern without `/` (`*.pem`) matches that file name in any directory.

use regex::{RegexSet, RegexSetBuilder};

use crate::config::ConfigError;

/// Built-in never-capture patterns: password hashes, private keys, cloud and tool
/// credentials, mounted secrets.
pub(crate) const BUILTIN: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/ssh/ssh_host_*_key",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "id_ecdsa_sk",
    "id_ed25519_sk",
    "**/.ssh/**",
    "~/.aws/credentials",
    "~/.aws/sso/cache/**",
    "~/.config/gcloud/**",
    "~/.azure/**",
    "~/.docker/config.json",
    "~/.kube/config",
    "~/.netrc",
    "~/_netrc",
    "~/.pgpass",
    "~/.git-credentials",
    "~/.npmrc",
    "~/.pypirc",
    "~/.vault-token",
    "~/.my.cnf",
    "~/.gnupg/**",
    "/run/secrets/**",
    "/var/run/secrets/**",
];

pub(crate) struct NeverCapture {
    set: RegexSet,
    names: Vec<String>,
}

impl NeverCapture {
    pub(crate) fn new(builtin: bool, extra: &[String]) -> Result<NeverCapture, ConfigError> {
        let mut names: Vec<String> = Vec::new();
        let mut regexes = Vec::new();
        let all = builtin
            .then_some(BUILTIN)
            .into_iter()
            .flatten()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned());
        for pattern in all {
            let regex = glob_to_regex(&pattern).map_err(|reason| ConfigError::BadPath {
                pattern: pattern.clone(),
                reason,
            })?;
            regexes.push(regex);
            names.push(pattern);
        }
        let set = RegexSetBuilder::new(&regexes)
            .build()
            .map_err(|error| ConfigError::BadPath {
                pattern: names.last().cloned().unwrap_or_default(),
                reason: crate::config::one_line(&error.to_string()),
            })?;
        Ok(NeverCapture { set, names })
    }

    /// The first pattern that matches `path`.
    pub(crate) fn matches(&self, path: &str) -> Option<&str> {
        // Most paths match nothing: answer that without building the set of matches.
        if !self.set.is_match(path) {
            return None;
        }
        self.set
            .matches(path)
            .iter()
            .next()
            .map(|i| self.names[i].as_str())
    }
}

fn glob_to_regex(glob: &str) -> Result<String, String> {
    let glob = if let Some(rest) = glob.strip_prefix("~/") {
        format!("**/{rest}")
    } else if !glob.contains('/') {
        format!("**/{glob}")
    } else {
        glob.to_string()
    };
    if !(glob.starts_with('/') || glob.starts_with("**/")) {
        return Err("must be absolute, start with `~/`, or be a bare file name".into());
    }
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    out.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    out.push_str(".*");
                    i += 2;
                }
                continue;
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or("unclosed `[`")?;
                let class: String = chars[i + 1..i + 1 + close].iter().collect();
                let class = class
                    .strip_prefix('!')
                    .map_or(class.clone(), |c| format!("^{c}"));
                out.push('[');
                out.push_str(&class.replace('\\', "\\\\"));
                out.push(']');
                i += close + 2;
                continue;
            }
            '{' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or("unclosed `{`")?;
                let inner: String = chars[i + 1..i + 1 + close].iter().collect();
                let alternatives: Vec<String> = inner.split(',').map(regex::escape).collect();
                out.push_str(&format!("(?:{})", alternatives.join("|")));
                i += close + 2;
                continue;
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_paths() {
        let n = NeverCapture::new(true, &[]).unwrap();
        for path in [
            "/etc/shadow",
            "/etc/gshadow",
            "/home/alice/.ssh/id_ed25519",
            "/home/alice/.ssh/config",
            "/root/.ssh/authorized_keys",
            "/srv/app/tls/server.key",
            "/etc/ssl/private/site.pem",
            "/home/alice/.aws/credentials",
            "/home/alice/.config/gcloud/application_default_credentials.json",
            "/home/alice/.azure/msal_token_cache.json",
            "/home/alice/.docker/config.json",
            "/root/.kube/config",
            "/home/alice/.netrc",
            "/var/lib/postgresql/.pgpass",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/opt/keys/id_rsa",
        ] {
            assert!(n.matches(path).is_some(), "{path}");
        }
        for path in [
            "/etc/passwd",
            "/etc/hosts",
            "/home/alice/.bashrc",
            "/home/alice/.aws/config",
            "/srv/app/keyboard.txt",
            "/home/alice/ssh/notes",
            "/etc/shadowsocks.json",
        ] {
            assert_eq!(n.matches(path), None, "{path}");
        }
    }

    #[test]
    fn user_globs() {
        let n = NeverCapture::new(
            false,
            &["/srv/*/secrets/**".into(), "*.{tfstate,env}".into()],
        )
        .unwrap();
        assert_eq!(
            n.matches("/srv/app/secrets/db.txt"),
            Some("/srv/*/secrets/**")
        );
        assert_eq!(n.matches("/srv/app/x/secrets/db.txt"), None);
        assert_eq!(
            n.matches("/work/infra/prod.tfstate"),
            Some("*.{tfstate,env}")
        );
        assert_eq!(n.matches("/work/.env"), Some("*.{tfstate,env}"));
        assert_eq!(n.matches("/etc/shadow"), None);
    }

    #[test]
    fn relative_patterns_are_refused() {
        assert!(matches!(
            NeverCapture::new(false, &["secrets/db".into()]),
            Err(ConfigError::BadPath { .. })
        ));
        assert!(NeverCapture::new(false, &["/x/[ab".into()]).is_err());
    }
}
