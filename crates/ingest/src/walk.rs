//! Finding and loading every supported file under some paths; one bad file never stops
//! the others.

use crate::error::{Error, Result};
use crate::format::format_for_path;
use crate::load::{FileOutcome, LoadOptions, load};
use std::path::{Path, PathBuf};

/// Supported files under `paths`, in a stable order (sorted by name within each folder).
/// Hidden files and folders are skipped, as are files of other types found while walking;
/// a path given explicitly with an unsupported type is an error, as is an unreadable folder.
pub fn walk<P: AsRef<Path>>(paths: &[P]) -> Vec<Result<PathBuf>> {
    let mut found = Vec::new();
    for root in paths {
        let root = root.as_ref();
        if root.is_file() {
            found.push(match format_for_path(root) {
                Some(_) => Ok(root.to_owned()),
                None => Err(Error::Unsupported {
                    path: root.to_owned(),
                    ext: root
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                }),
            });
            continue;
        }
        let walker = walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walker {
            match entry {
                Ok(e) if e.file_type().is_file() && format_for_path(e.path()).is_some() => {
                    found.push(Ok(e.into_path()))
                }
                Ok(_) => {}
                Err(e) => found.push(Err(Error::Walk {
                    path: e.path().unwrap_or(root).to_owned(),
                    reason: e.io_error().map_or_else(
                        || e.to_string(),
                        |io| format!("{io}; check the folder's permissions"),
                    ),
                })),
            }
        }
    }
    found
}

/// Walks `paths` and loads every supported file, lazily, one [`FileOutcome`] per file (or
/// per walk error). Files are loaded whole; stream big text files with [`crate::open`].
pub fn load_all<'a, P: AsRef<Path>>(
    paths: &[P],
    opts: &'a LoadOptions,
) -> impl Iterator<Item = FileOutcome> + 'a {
    walk(paths).into_iter().map(move |found| match found {
        Ok(path) => FileOutcome {
            result: load(&path, opts),
            path,
        },
        Err(e) => FileOutcome {
            path: e.path().to_owned(),
            result: Err(e),
        },
    })
}
