//! Filters become a set of allowed chunk ids before searching, so each mode applies them
//! before its cut-off and `k` results come back whenever `k` chunks match.

use crate::{Error, Result};
use globset::{GlobBuilder, GlobMatcher};
use ragtune_core::Filter;
use ragtune_index::{KnowledgeBase, SharedFilter, StoredDocument};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// A path glob. `*` stays within one path component, `**` crosses them. An absolute pattern
/// must match the whole source path; a relative one matches any trailing part of it, so
/// `docs/*.md` matches `/home/me/project/docs/intro.md`.
#[derive(Debug, Clone)]
pub struct PathGlob {
    matcher: GlobMatcher,
    absolute: bool,
}

impl PathGlob {
    pub fn new(pattern: &str) -> Result<Self> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Glob {
                pattern: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?;
        Ok(PathGlob {
            matcher: glob.compile_matcher(),
            absolute: pattern.starts_with('/'),
        })
    }

    pub fn is_match(&self, source: &str) -> bool {
        if self.matcher.is_match(source) {
            return true;
        }
        if self.absolute {
            return false;
        }
        let path = Path::new(source);
        let mut components = path.components();
        while components.next().is_some() {
            let rest = components.as_path();
            if rest.as_os_str().is_empty() {
                break;
            }
            if self.matcher.is_match(rest) {
                return true;
            }
        }
        false
    }
}

/// Does the document pass the filter's path (of its file, or its own source such as
/// `notes.jsonl#L3`), format and metadata conditions?
pub fn document_matches(filter: &Filter, glob: Option<&PathGlob>, doc: &StoredDocument) -> bool {
    glob.is_none_or(|g| g.is_match(&doc.file) || g.is_match(&doc.source))
        && (filter.formats.is_empty() || filter.formats.contains(&doc.format))
        && filter
            .metadata
            .iter()
            .all(|(k, v)| doc.metadata.get(k) == Some(v))
}

/// The chunk-id predicate for `filter`, or `None` when it lets everything through.
pub fn resolve(kb: &KnowledgeBase, filter: &Filter) -> Result<Option<SharedFilter>> {
    if filter.path_glob.is_none() && filter.formats.is_empty() && filter.metadata.is_empty() {
        return Ok(None);
    }
    let glob = filter.path_glob.as_deref().map(PathGlob::new).transpose()?;
    let docs: HashSet<i64> = kb
        .documents()?
        .iter()
        .filter(|d| document_matches(filter, glob.as_ref(), d))
        .map(|d| d.id)
        .collect();
    let chunks: HashSet<i64> = kb
        .store()
        .chunk_documents()?
        .into_iter()
        .filter(|(_, doc)| docs.contains(doc))
        .map(|(chunk, _)| chunk)
        .collect();
    Ok(Some(Arc::new(move |id| chunks.contains(&id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_globs_match_trailing_components() {
        let g = PathGlob::new("docs/*.md").unwrap();
        assert!(g.is_match("/home/me/docs/intro.md"));
        assert!(!g.is_match("/home/me/docs/sub/intro.md"));
        assert!(!g.is_match("/home/me/mydocs/intro.md"));
        let g = PathGlob::new("**/*.pdf").unwrap();
        assert!(g.is_match("/a/b/c.pdf"));
        let g = PathGlob::new("*.txt").unwrap();
        assert!(g.is_match("/a/b/c.txt"));
        let g = PathGlob::new("/a/*.txt").unwrap();
        assert!(g.is_match("/a/c.txt"));
        assert!(!g.is_match("/x/a/c.txt"));
    }
}
