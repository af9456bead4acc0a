//! The real [`DocumentSource`]: `ragtune-ingest` walks folders, loads every supported format
//! and chunks with the embedder's token counter. Files stream segment by segment, and only
//! chunks are kept (the knowledge base stores chunks, not whole texts), so a huge text file
//! costs memory for its chunks, not twice its text.

use crate::source::{DocumentSource, LoadedDocument, LoadedFile, SourceError};
use ragtune_core::TokenCounter;
use ragtune_ingest::{ChunkOptions, Chunker, LoadOptions};
use std::path::{Path, PathBuf};

/// Loads files with `ragtune-ingest`.
pub struct IngestSource<'a> {
    counter: &'a dyn TokenCounter,
    pub load: LoadOptions,
    pub chunk: ChunkOptions,
}

impl<'a> IngestSource<'a> {
    /// `counter` is the embedder's tokenizer, so chunks fit its window.
    pub fn new(counter: &'a dyn TokenCounter) -> Self {
        IngestSource {
            counter,
            load: LoadOptions::default(),
            chunk: ChunkOptions::default(),
        }
    }
}

fn source_error(e: &ragtune_ingest::Error) -> SourceError {
    SourceError {
        path: e.path().to_owned(),
        reason: e.to_string(),
        skipped: matches!(e, ragtune_ingest::Error::NotAFile { .. }),
    }
}

impl DocumentSource for IngestSource<'_> {
    fn list(&self, root: &Path) -> Vec<Result<PathBuf, SourceError>> {
        ragtune_ingest::walk(&[root])
            .into_iter()
            .map(|r| r.map_err(|e| source_error(&e)))
            .collect()
    }

    fn chunking(&self) -> Option<&ChunkOptions> {
        Some(&self.chunk)
    }

    fn load(&self, path: &Path) -> Result<LoadedFile, SourceError> {
        let segments = ragtune_ingest::open(path, &self.load).map_err(|e| source_error(&e))?;
        let mut chunker = Chunker::new(self.counter, self.chunk.clone());
        let mut out = LoadedFile::default();
        for segment in segments {
            let segment = match segment {
                Ok(s) => s,
                // A bad record (JSONL line): the rest of the file still loads.
                Err(e) => {
                    out.warnings.push(e.to_string());
                    continue;
                }
            };
            out.warnings
                .extend(segment.warnings.iter().map(|w| w.message.clone()));
            let chunking = std::time::Instant::now();
            let chunks = chunker.push(&segment);
            out.chunk_time += chunking.elapsed();
            let mut document = segment.document;
            match out.documents.last_mut() {
                Some(last) if segment.offset > 0 && last.document.source == document.source => {
                    last.chunks.extend(chunks);
                    last.document.metadata.append(&mut document.metadata);
                }
                _ => {
                    document.text = String::new();
                    document.blocks = Vec::new();
                    out.documents.push(LoadedDocument { document, chunks });
                }
            }
        }
        Ok(out)
    }
}
