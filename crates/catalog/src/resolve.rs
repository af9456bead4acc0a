//! Turning what the user typed (a path or a catalogue name) into what the runtime
//! loads. This runs on every command, so it only looks at names and magic bytes;
//! hashes are checked by `pull`, which is the only way files get their final names.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::catalog::ModelKind;
use crate::error::{Error, Result};
use crate::store::{InstallState, ModelStore};

/// What the runtime should load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedModel {
    /// A llama.cpp model file.
    Gguf(PathBuf),
    /// A Hugging Face folder: config.json, tokenizer.json and *.safetensors.
    HfFolder(PathBuf),
}

impl ResolvedModel {
    pub fn path(&self) -> &Path {
        match self {
            ResolvedModel::Gguf(path) | ResolvedModel::HfFolder(path) => path,
        }
    }
}

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

impl ModelStore {
    /// Resolves an existing path (a .gguf file, a Hugging Face folder, or a folder with
    /// exactly one .gguf) or else a catalogue name or alias of an installed model.
    pub fn resolve(&self, name_or_path: &str) -> Result<ResolvedModel> {
        let path = Path::new(name_or_path);
        if path.exists() {
            return resolve_path(path);
        }
        match self.catalog().get(name_or_path) {
            Some(entry) => {
                let dir = self.model_dir(entry);
                if self.state(entry) != InstallState::Installed {
                    return Err(Error::NotInstalled {
                        name: entry.name.clone(),
                        dir,
                    });
                }
                let main = entry.main_path(&dir);
                Ok(match entry.kind {
                    ModelKind::Generator => ResolvedModel::Gguf(main),
                    ModelKind::Embedder => ResolvedModel::HfFolder(main),
                })
            }
            // A model made locally (e.g. by `ragtune models quantize`) lives in its own
            // folder under models/ and is named by that folder.
            None if !looks_like_path(name_or_path)
                && !name_or_path.starts_with('.')
                && self.models_dir().join(name_or_path).is_dir() =>
            {
                resolve_path(&self.models_dir().join(name_or_path))
            }
            None if looks_like_path(name_or_path) => Err(Error::PathNotFound {
                path: path.to_path_buf(),
                known: self.catalog().known_names(),
            }),
            None => Err(Error::UnknownModel {
                name: name_or_path.to_owned(),
                known: self.catalog().known_names(),
            }),
        }
    }
}

/// Catalogue names never contain separators or end in a model file extension.
fn looks_like_path(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    arg.contains(['/', '\\'])
        || arg.starts_with('~')
        || [".gguf", ".safetensors", ".bin"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

fn resolve_path(path: &Path) -> Result<ResolvedModel> {
    if path.is_file() {
        return match is_gguf(path)? {
            true => Ok(ResolvedModel::Gguf(path.to_path_buf())),
            false => Err(Error::NotGguf {
                path: path.to_path_buf(),
            }),
        };
    }
    let mut names = Vec::new();
    for item in fs_err::read_dir(path)? {
        let item = item?;
        if item.path().is_file() {
            names.push(item.file_name().to_string_lossy().into_owned());
        }
    }
    let has = |name: &str| names.iter().any(|n| n == name);
    if has("config.json")
        && has("tokenizer.json")
        && names.iter().any(|n| n.ends_with(".safetensors"))
    {
        return Ok(ResolvedModel::HfFolder(path.to_path_buf()));
    }
    // `x.gguf.partial` does not end in `.gguf`: an unfinished pull never counts.
    let ggufs: Vec<&String> = names
        .iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    match ggufs.as_slice() {
        [one] => resolve_path(&path.join(one)),
        _ => Err(Error::NotModelFolder {
            path: path.to_path_buf(),
            gguf_count: ggufs.len(),
        }),
    }
}

fn is_gguf(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut file = fs_err::File::open(path)?;
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..])? {
            0 => return Ok(false),
            n => filled += n,
        }
    }
    Ok(&magic == GGUF_MAGIC)
}
