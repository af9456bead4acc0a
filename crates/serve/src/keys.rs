//! API keys: made by `ragtune keys create`, shown once, stored as SHA-256 hashes in a JSON
//! file. A key has a scope (read < write < admin) and may be limited to one knowledge base.
//! The server re-reads the file when it changes, so a revoked key stops working at once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// What a key may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Models, completions, embeddings, search, and reading knowledge bases.
    Read,
    /// Also uploading and deleting documents.
    Write,
    /// Everything.
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("{other:?} is no scope: use read, write or admin")),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

/// A stored key: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Names the key in `keys list` and `keys revoke` (not secret).
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub scope: Scope,
    /// The one knowledge base the key may read (and write); `None`: all of them.
    pub kb: Option<String>,
    /// A label for people (who or what uses the key).
    #[serde(default)]
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

impl Key {
    /// Whether the key reaches the knowledge base `kb`.
    pub fn allows_kb(&self, kb: &str) -> bool {
        self.kb.as_deref().is_none_or(|k| k == kb)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<Key>,
}

/// A keys file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeysError {
    pub path: PathBuf,
    pub reason: String,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> KeysError {
    KeysError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The keys in `path`; a missing file holds none.
pub fn read(path: &Path) -> Result<Vec<Key>, KeysError> {
    match fs_err::read(path) {
        Ok(bytes) => serde_json::from_slice::<KeyFile>(&bytes)
            .map(|f| f.keys)
            .map_err(|e| {
                err(
                    path,
                    format!("is not a ragtune keys file ({e}); fix it or move it away"),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(path, e)),
    }
}

/// Writes `keys` to `path` in one step (a new file renamed over the old one), readable by its
/// owner only.
fn write(path: &Path, keys: &[Key]) -> Result<(), KeysError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|e| err(path, e))?;
    }
    let body = serde_json::to_vec_pretty(&KeyFile {
        keys: keys.to_vec(),
    })
    .map_err(|e| err(path, e))?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write as _;
        let mut options = fs_err::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use fs_err::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| err(path, e))?;
        file.write_all(&body).map_err(|e| err(path, e))?;
        file.sync_all().map_err(|e| err(path, e))?;
    }
    fs_err::rename(&tmp, path).map_err(|e| err(path, e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(hex(&buf))
}

/// Makes a key, adds its hash to `path`, and returns it with its secret: the only time the
/// secret exists outside the caller.
pub fn create(
    path: &Path,
    scope: Scope,
    kb: Option<String>,
    name: String,
) -> Result<(Key, String), KeysError> {
    let mut keys = read(path)?;
    let secret = format!("rt-{}", random_hex(24).map_err(|e| err(path, e))?);
    let id = loop {
        let id = format!("key-{}", random_hex(4).map_err(|e| err(path, e))?);
        if !keys.iter().any(|k| k.id == id) {
            break id;
        }
    };
    let key = Key {
        id,
        hash: hash(&secret),
        scope,
        kb,
        name,
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    keys.push(key.clone());
    write(path, &keys)?;
    Ok((key, secret))
}

/// Removes the key `id` from `path`; `false` if there was none.
pub fn revoke(path: &Path, id: &str) -> Result<bool, KeysError> {
    let mut keys = read(path)?;
    let before = keys.len();
    keys.retain(|k| k.id != id);
    if keys.len() == before {
        return Ok(false);
    }
    write(path, &keys)?;
    Ok(true)
}

/// The keys a server checks requests against, re-read when the file changes.
pub struct KeyRing {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<Key>)>,
}

impl KeyRing {
    pub fn open(path: &Path) -> Result<Self, KeysError> {
        let keys = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            cache: Mutex::new((modified(path), keys)),
        })
    }

    /// Whether any key exists (without keys a server only listens on loopback, unchecked).
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// The key whose secret is `secret`.
    pub fn find(&self, secret: &str) -> Option<Key> {
        let wanted = hash(secret);
        self.current().into_iter().find(|k| k.hash == wanted)
    }

    fn current(&self) -> Vec<Key> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = modified(&self.path);
        if now != cache.0 {
            // A file that became unreadable keeps the keys read last, rather than letting
            // every request in or locking everyone out mid-edit.
            if let Ok(keys) = read(&self.path) {
                *cache = (now, keys);
            }
        }
        cache.1.clone()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_found_by_its_secret_only_and_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (key, secret) = create(&path, Scope::Write, Some("docs".into()), "ci".into()).unwrap();
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(!stored.contains(&secret), "the secret must not be stored");
        let ring = KeyRing::open(&path).unwrap();
        assert_eq!(ring.find(&secret), Some(key.clone()));
        assert_eq!(ring.find("rt-0000"), None);
        assert!(key.allows_kb("docs") && !key.allows_kb("other"));
    }

    #[test]
    fn a_revoked_key_stops_working_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (a, secret_a) = create(&path, Scope::Read, None, String::new()).unwrap();
        let ring = KeyRing::open(&path).unwrap();
        assert!(ring.find(&secret_a).is_some());
        // Modification times can be coarse: make the change visible to the check.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(revoke(&path, &a.id).unwrap());
        let f = std::fs::File::options().append(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(ring.find(&secret_a), None);
        assert!(!revoke(&path, &a.id).unwrap());
    }

    #[test]
    fn a_damaged_keys_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = KeyRing::open(&path).err().unwrap();
        assert!(e.to_string().contains("keys.json"), "{e}");
    }
}
