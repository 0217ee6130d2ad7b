//! The keys: recipients a recording is sealed to (`--seal-to`, `--seal-to-file`), the
//! identities a reader opens it with (`--identity`), and `recorder keygen`'s identity file.

use std::{
    fs::OpenOptions,
    io::{self, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    str::FromStr,
};

use age::{
    secrecy::ExposeSecret,
    x25519::{Identity, Recipient},
    DecryptError,
};
use thiserror::Error;

use super::{Seal, BLOCK_INDEX_BYTES, IDENTITY_PREFIX, RECIPIENT_PREFIX};

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("`{text}` is not an age X25519 recipient (age1…): {reason}")]
    InvalidRecipient { text: String, reason: &'static str },
    // Never echo the value: it is a secret key, possibly pasted into shell history already.
    #[error("{origin}: that is a secret identity (AGE-SECRET-KEY-1…), not a recipient: pass its public key (`recorder keygen` prints it) and keep the identity off the recording host")]
    IdentityAsRecipient { origin: String },
    #[error("{path} line {line}: {source}")]
    RecipientsFileLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: Box<KeyError>,
    },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no recipients (one age1… per line, # comments)")]
    NoRecipients { path: PathBuf },
    #[error("{path} line {line} is a public recipient (age1…), not an identity: pass the identity file (`recorder keygen --output FILE` writes one)")]
    RecipientAsIdentity { path: PathBuf, line: usize },
    #[error("{path} line {line} is not an age X25519 identity (AGE-SECRET-KEY-1…)")]
    InvalidIdentity { path: PathBuf, line: usize },
    #[error("{path} holds no identities (AGE-SECRET-KEY-1… lines)")]
    NoIdentities { path: PathBuf },
    #[error("{path} already exists: refusing to overwrite an identity (it may be the only key to old recordings)")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The seal `recorderd --seal-to R... --seal-to-file F...` asks for; `None` for neither.
pub fn from_args(recipients: &[String], files: &[PathBuf]) -> Result<Option<Seal>, KeyError> {
    let mut all = recipients
        .iter()
        .map(|text| parse_recipient(text))
        .collect::<Result<Vec<_>, _>>()?;
    for file in files {
        all.extend(read_recipients_file(file)?);
    }
    Ok(Seal::new(all))
}

/// Parses one `--seal-to` value.
pub fn parse_recipient(text: &str) -> Result<Recipient, KeyError> {
    let text = text.trim();
    if text.to_ascii_uppercase().starts_with(IDENTITY_PREFIX) {
        return Err(KeyError::IdentityAsRecipient {
            origin: "--seal-to".to_owned(),
        });
    }
    Recipient::from_str(text).map_err(|reason| KeyError::InvalidRecipient {
        text: text.chars().take(80).collect(),
        reason,
    })
}

/// Reads a recipients file: one `age1…` per line; blank lines and `#` comments are skipped.
pub fn read_recipients_file(path: &Path) -> Result<Vec<Recipient>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut recipients = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = parse_recipient(line).map_err(|error| match error {
            KeyError::IdentityAsRecipient { .. } => KeyError::IdentityAsRecipient {
                origin: format!("{} line {}", path.display(), n + 1),
            },
            other => KeyError::RecipientsFileLine {
                path: path.to_owned(),
                line: n + 1,
                source: Box::new(other),
            },
        })?;
        recipients.push(parsed);
    }
    if recipients.is_empty() {
        return Err(KeyError::NoRecipients {
            path: path.to_owned(),
        });
    }
    Ok(recipients)
}

/// The identities a reader tries on sealed segments (`--identity`, `RECORDER_IDENTITY`).
#[derive(Clone, Default)]
pub struct Keyring {
    identities: Vec<Identity>,
    /// Public keys of `identities`, to match against a seal header without decrypting.
    public: Vec<String>,
}

impl Keyring {
    /// Loads every identity in each file (age-keygen's format: `AGE-SECRET-KEY-1…` lines,
    /// blank lines and `#` comments).
    pub fn load(paths: &[PathBuf]) -> Result<Keyring, KeyError> {
        let mut keyring = Keyring::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                path: path.clone(),
                source,
            })?;
            let before = keyring.identities.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.starts_with(RECIPIENT_PREFIX) {
                    return Err(KeyError::RecipientAsIdentity {
                        path: path.clone(),
                        line: n + 1,
                    });
                }
                let identity = Identity::from_str(line).map_err(|_| KeyError::InvalidIdentity {
                    path: path.clone(),
                    line: n + 1,
                })?;
                keyring.add(identity);
            }
            if keyring.identities.len() == before {
                return Err(KeyError::NoIdentities { path: path.clone() });
            }
        }
        Ok(keyring)
    }

    pub fn add(&mut self, identity: Identity) {
        self.public.push(identity.to_public().to_string());
        self.identities.push(identity);
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// True if one of our identities belongs to one of `recipients`.
    pub fn opens(&self, recipients: &[String]) -> bool {
        self.public.iter().any(|key| recipients.contains(key))
    }

    /// Decrypts one sealed block and checks its index; returns the zstd frame inside.
    pub fn open_block(&self, block: &[u8], expected_index: u32) -> Result<Vec<u8>, String> {
        let decryptor = age::Decryptor::new_buffered(block).map_err(describe)?;
        let identities = self.identities.iter().map(|i| i as &dyn age::Identity);
        let mut reader = decryptor.decrypt(identities).map_err(describe)?;
        let mut plain = Vec::with_capacity(block.len());
        reader
            .read_to_end(&mut plain)
            .map_err(|error| format!("sealed block does not decrypt ({error})"))?;
        let Some((index, zstd)) = plain.split_first_chunk::<BLOCK_INDEX_BYTES>() else {
            return Err("sealed block is shorter than its index".to_owned());
        };
        let index = u32::from_le_bytes(*index);
        if index != expected_index {
            return Err(format!(
                "sealed block {index} where block {expected_index} belongs (blocks dropped or reordered)"
            ));
        }
        Ok(zstd.to_vec())
    }
}

fn describe(error: DecryptError) -> String {
    match error {
        DecryptError::NoMatchingKeys => {
            "no given identity opens this sealed block, though the seal header names one of their recipients".to_owned()
        }
        other => format!("sealed block does not decrypt ({other})"),
    }
}

/// Generates an identity and writes it to `path` (created 0600, never over an existing file
/// or through a symlink) in age-keygen's format. Returns the public recipient.
pub fn write_new_identity(path: &Path) -> Result<Recipient, KeyError> {
    let identity = Identity::generate();
    let recipient = identity.to_public();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_owned(),
            },
            _ => KeyError::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    let write_error = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    file.write_all(identity_file_text(&identity).as_bytes())
        .map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    Ok(recipient)
}

/// The identity file's text: age-keygen's layout, so `age -d -i FILE` reads it too.
pub fn identity_file_text(identity: &Identity) -> String {
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!(
        "# created: {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    )
}
