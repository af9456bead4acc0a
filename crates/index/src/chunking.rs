//! The chunk settings a knowledge base's documents were cut with. The first sync that meets a
//! knowledge base without them records its own; every later sync must cut with the same ones.
//! Without the record, a sync with other settings reported every file "unchanged" (by content
//! hash) and kept the old chunks, so a user who asked for smaller chunks silently got none;
//! re-chunking only the changed files would mix two cuts in one index instead.

use crate::target::SyncTarget;
use crate::{Error, Result};
use ragtune_ingest::ChunkOptions;

/// The key the settings are stored under in a knowledge base's meta table (both stores).
pub const META_KEY: &str = "chunking";

/// The stored form: `max_tokens=256 overlap_tokens=32 section_level=3`.
pub fn encode(c: &ChunkOptions) -> String {
    format!(
        "max_tokens={} overlap_tokens={} section_level={}",
        c.max_tokens, c.overlap_tokens, c.section_level
    )
}

/// Reads [`encode`]'s form back; `location` names the knowledge base in the error.
pub fn decode(location: &str, stored: &str) -> Result<ChunkOptions> {
    let unreadable = || Error::ChunkingRecord {
        location: location.to_owned(),
        stored: stored.to_owned(),
    };
    let (mut max, mut overlap, mut level) = (None, None, None);
    for pair in stored.split_whitespace() {
        let (key, value) = pair.split_once('=').ok_or_else(unreadable)?;
        match key {
            "max_tokens" => max = value.parse().ok(),
            "overlap_tokens" => overlap = value.parse().ok(),
            "section_level" => level = value.parse().ok(),
            _ => return Err(unreadable()),
        }
    }
    match (max, overlap, level) {
        (Some(max_tokens), Some(overlap_tokens), Some(section_level)) => Ok(ChunkOptions {
            max_tokens,
            overlap_tokens,
            section_level,
        }),
        _ => Err(unreadable()),
    }
}

/// The settings to cut with when the caller sets none: the knowledge base's `recorded` ones,
/// or the defaults with chunks of at most `cap` tokens (the embedder's window).
pub fn recorded_or_default(recorded: Option<ChunkOptions>, cap: usize) -> ChunkOptions {
    recorded.unwrap_or_else(|| {
        let default = ChunkOptions::default();
        ChunkOptions {
            max_tokens: default.max_tokens.min(cap),
            ..default
        }
    })
}

/// Records `wanted` where `target` has no chunk settings yet; fails, before anything is
/// written, where it has others.
pub(crate) fn agree(target: &mut dyn SyncTarget, wanted: &ChunkOptions) -> Result<()> {
    match target.chunking()? {
        Some(stored) if &stored == wanted => Ok(()),
        // Nothing stored was cut with the old settings (every document since deleted).
        Some(_) if target.sources()?.is_empty() => target.record_chunking(wanted),
        Some(stored) => Err(Error::ChunkingMismatch {
            location: target.location(),
            stored: describe(&stored),
            requested: describe(wanted),
        }),
        None => target.record_chunking(wanted),
    }
}

/// The settings in words, as the CLI's options name them.
pub fn describe(c: &ChunkOptions) -> String {
    format!(
        "chunks of at most {} tokens overlapping by {} (--max-tokens {} --overlap {})",
        c.max_tokens, c.overlap_tokens, c.max_tokens, c.overlap_tokens
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_records_are_named() {
        let c = ChunkOptions {
            max_tokens: 128,
            overlap_tokens: 16,
            section_level: 2,
        };
        assert_eq!(decode("kb", &encode(&c)).unwrap(), c);
        for bad in [
            "",
            "max_tokens=1",
            "max_tokens=x overlap_tokens=1 section_level=1",
            "a=1",
        ] {
            let e = decode("/data/kb", bad).unwrap_err().to_string();
            assert!(e.contains("/data/kb"), "{e}");
        }
    }
}
