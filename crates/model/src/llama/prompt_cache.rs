//! KV cells kept on disk between processes ([`super::LoadOptions::prompt_cache`]).
//!
//! `ask` is one process per question, so the in-memory prefix reuse of a long-running
//! generator never applies to it: every run computed the same system text and worked exchanges
//! again. Here a single-sequence request starts from the cells the last run with the same
//! model, adapter and build left in a file, and the usual prefix comparison decides how much of
//! them the new prompt can use. A file is only ever used by the build that wrote it, with the
//! same threads and batch size, so the cells are the ones this process would compute itself.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::token::LlamaToken;
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Files kept in a cache folder; older ones (other models, adapters, builds) are removed.
const KEPT_FILES: usize = 8;

/// Where one generator's cells are kept, and what identifies them.
#[derive(Debug)]
pub(super) struct PromptCache {
    dir: PathBuf,
    /// Everything the cells depend on besides the adapter, hashed: the model file, this
    /// executable (its llama.cpp build and flags), threads, batch size and cache precision.
    base: u64,
}

/// A file's identity without reading it: path, length and modification time.
fn file_identity(path: &Path, hasher: &mut DefaultHasher) {
    path.hash(hasher);
    if let Ok(meta) = std::fs::metadata(path) {
        meta.len().hash(hasher);
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .hash(hasher);
    }
}

impl PromptCache {
    pub fn new(dir: PathBuf, model: &Path, settings: impl Hash) -> Self {
        let mut hasher = DefaultHasher::new();
        file_identity(model, &mut hasher);
        match std::env::current_exe() {
            Ok(exe) => file_identity(&exe, &mut hasher),
            // No way to tell builds apart: a unique key, so nothing is shared.
            Err(_) => std::process::id().hash(&mut hasher),
        }
        settings.hash(&mut hasher);
        Self {
            dir,
            base: hasher.finish(),
        }
    }

    /// The file for cells computed with `adapter` (`None`: the base model), given the
    /// adapter's file and scale.
    pub fn file(&self, adapter: Option<(&str, &Path, f32)>) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        self.base.hash(&mut hasher);
        if let Some((name, path, scale)) = adapter {
            name.hash(&mut hasher);
            file_identity(path, &mut hasher);
            scale.to_bits().hash(&mut hasher);
        }
        self.dir.join(format!("{:016x}.kv", hasher.finish()))
    }

    /// Restores sequence 0 of `ctx` from `file`: the tokens its cells hold, or `None` (nothing
    /// restored, the sequence empty) when there is no usable file.
    pub fn load(
        &self,
        ctx: &mut LlamaContext<'_>,
        file: &Path,
        max_tokens: usize,
    ) -> Option<Vec<LlamaToken>> {
        let bytes = std::fs::read(file).ok()?;
        let (tokens, state) = decode(&bytes)?;
        if tokens.is_empty() || tokens.len() > max_tokens {
            return None;
        }
        // SAFETY: `state` is what `state_seq_get_data_ext` wrote for a context of this model,
        // in this executable, with these settings (the file's name says so) and its checksum
        // holds; llama.cpp asserts rather than fails on some malformed data, so nothing else is
        // ever handed to it.
        let restored = unsafe { ctx.state_seq_set_data_ext(state, 0, LlamaStateSeqFlags::empty()) };
        if restored {
            Some(tokens)
        } else {
            // It did not fit this context (too few free cells): start from nothing.
            ctx.clear_kv_cache_seq(Some(0), None, None).ok();
            None
        }
    }

    /// Writes sequence 0 of `ctx`, which holds `tokens`, to `file`, beside it first and then
    /// renamed, so a reader never sees half a file. Failing to write only costs the next run
    /// time, so errors are dropped.
    pub fn save(&self, ctx: &LlamaContext<'_>, file: &Path, tokens: &[LlamaToken]) {
        if tokens.is_empty() || std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let flags = LlamaStateSeqFlags::empty();
        let size = ctx.state_seq_get_size_ext(0, flags);
        let mut state = vec![0u8; size];
        // SAFETY: `state` holds the size llama.cpp asked for.
        let written = unsafe { ctx.state_seq_get_data_ext(state.as_mut_ptr(), 0, flags) };
        if written != size {
            return;
        }
        let partial = file.with_extension(format!("kv.{}.partial", std::process::id()));
        let saved = std::fs::write(&partial, encode(tokens, &state)).is_ok()
            && std::fs::rename(&partial, file).is_ok();
        if !saved {
            std::fs::remove_file(&partial).ok();
            return;
        }
        self.prune(file);
    }

    /// Keeps the [`KEPT_FILES`] newest cache files (always `keep`), removes the others and any
    /// partial file left by a writer that died.
    fn prune(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(".kv") {
                files.push((modified, path));
            } else if name.ends_with(".partial")
                && modified.elapsed().is_ok_and(|age| age.as_secs() > 3600)
            {
                std::fs::remove_file(&path).ok();
            }
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (_, path) in files.into_iter().skip(KEPT_FILES) {
            if path != keep {
                std::fs::remove_file(&path).ok();
            }
        }
    }
}

const MAGIC: &[u8; 8] = b"RTKVSEQ1";
const HASH: usize = 32;

/// The file: magic, token count (u32), tokens (i32 each), state length (u64), state, and the
/// SHA-256 of everything before it; little-endian.
fn encode(tokens: &[LlamaToken], state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + 4 * tokens.len() + state.len() + HASH);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    for token in tokens {
        out.extend_from_slice(&token.0.to_le_bytes());
    }
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(state);
    let hash = Sha256::digest(&out);
    out.extend_from_slice(&hash);
    out
}

/// The tokens and state of a file [`encode`] wrote; `None` for anything else.
fn decode(bytes: &[u8]) -> Option<(Vec<LlamaToken>, &[u8])> {
    let (body, hash) = bytes.split_at_checked(bytes.len().checked_sub(HASH)?)?;
    if Sha256::digest(body).as_slice() != hash {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (count, mut rest) = rest.split_first_chunk::<4>()?;
    let count = u32::from_le_bytes(*count) as usize;
    let mut tokens = Vec::with_capacity(count.min(rest.len() / 4));
    for _ in 0..count {
        let (token, tail) = rest.split_first_chunk::<4>()?;
        tokens.push(LlamaToken(i32::from_le_bytes(*token)));
        rest = tail;
    }
    let (len, state) = rest.split_first_chunk::<8>()?;
    (u64::from_le_bytes(*len) == state.len() as u64).then_some((tokens, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_only_whole_and_unchanged() {
        let tokens = vec![LlamaToken(1), LlamaToken(-7), LlamaToken(151_643)];
        let state = (0..=255u8).cycle().take(5000).collect::<Vec<_>>();
        let file = encode(&tokens, &state);
        let (got, got_state) = decode(&file).unwrap();
        assert_eq!(got, tokens);
        assert_eq!(got_state, &state[..]);
        // Cut anywhere, or one bit changed anywhere: refused.
        for cut in [0, 1, 8, 12, 20, file.len() / 2, file.len() - 1] {
            assert!(decode(&file[..cut]).is_none(), "cut at {cut}");
        }
        for at in [0, 9, 13, 30, file.len() / 2, file.len() - 1] {
            let mut bent = file.clone();
            bent[at] ^= 0x10;
            assert!(decode(&bent).is_none(), "bit flipped at {at}");
        }
    }
}
