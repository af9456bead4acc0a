//! Finding and loading every supported file under some paths; one bad file never stops
//! the others.

use crate::error::{Error, Result};
use crate::format::format_for_path;
use crate::load::{FileOutcome, LoadOptions, load};
use std::path::{Path, PathBuf};

/// Supported files under `paths`, in a stable order (sorted by name within each folder).
/// Hidden files and folders are skipped, as are files of other types found while walking;
/// a path given explicitly with an unsupported type is an error, as is an unreadable folder.
/// Symbolic links are followed (a loop is reported, not walked forever); FIFOs, sockets,
/// devices and links that lead nowhere come back as [`Error::NotAFile`], so callers can say
/// what they skipped: reading a FIFO would block until some other process writes to it.
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
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walker {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    if format_for_path(e.path()).is_some() {
                        found.push(Ok(e.into_path()))
                    }
                }
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => found.push(Err(Error::NotAFile {
                    what: not_a_file(&e.file_type()).to_owned(),
                    path: e.into_path(),
                })),
                Err(e) if e.loop_ancestor().is_some() => found.push(Err(Error::NotAFile {
                    path: e.path().unwrap_or(root).to_owned(),
                    what: format!(
                        "a link back to {} (a loop)",
                        e.loop_ancestor().unwrap_or(root).display()
                    ),
                })),
                // A link whose target is missing (or a loop of links): nothing to read.
                Err(e) if e.path().is_some_and(|p| p.is_symlink() && !p.exists()) => {
                    found.push(Err(Error::NotAFile {
                        path: e.path().unwrap_or(root).to_owned(),
                        what: "a link that leads to no file (a missing target or a loop of links)"
                            .to_owned(),
                    }))
                }
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

fn not_a_file(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO (named pipe), not a regular file"
    } else if t.is_socket() {
        "a socket, not a regular file"
    } else if t.is_block_device() || t.is_char_device() {
        "a device, not a regular file"
    } else {
        "not a regular file"
    }
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
