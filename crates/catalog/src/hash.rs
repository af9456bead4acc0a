//! sha256 helpers: hashing a file on disk, and a file writer that hashes what it writes
//! so a 1 GB model is read once, never held in memory.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const BUF: usize = 1 << 20;

/// Lowercase hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(to_hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a write that grows too large is reported (see [`Error::TooLarge`]).
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub file: PathBuf,
    pub downloads: PathBuf,
}

/// A new file that hashes and counts its bytes and refuses to grow past `limit`.
pub(crate) struct HashingFile {
    path: PathBuf,
    out: BufWriter<fs_err::File>,
    hasher: Sha256,
    written: u64,
    limit: Option<u64>,
    origin: Origin,
}

impl HashingFile {
    /// Creates (truncates) `path`; a leftover from a killed run is simply overwritten.
    pub fn create(path: &Path, limit: Option<u64>, origin: Origin) -> Result<Self> {
        let file = fs_err::File::create(path)?;
        Ok(HashingFile {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(BUF, file),
            hasher: Sha256::new(),
            written: 0,
            limit,
            origin,
        })
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        let total = self.written + bytes.len() as u64;
        if let Some(size) = self.limit.filter(|&limit| total > limit) {
            return Err(Error::TooLarge {
                file: self.origin.file.clone(),
                size,
                downloads: self.origin.downloads.clone(),
            });
        }
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|source| Error::write(self.path.clone(), source))?;
        self.written = total;
        Ok(())
    }

    /// Flushes and fsyncs (the rename that follows must not publish a torn file);
    /// returns the hex sha256 and the byte count.
    pub fn finish(self) -> Result<(String, u64)> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::write(path.clone(), e.into_error()))?;
        file.sync_all()?;
        Ok((to_hex(&self.hasher.finalize()), self.written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: "f".into(),
            downloads: "d".into(),
        }
    }

    #[test]
    fn hashes_what_it_writes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x");
        let mut file = HashingFile::create(&path, None, origin())?;
        file.push(b"ab")?;
        file.push(b"c")?;
        let (hex, n) = file.finish()?;
        // sha256("abc"), a published test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!((hex.as_str(), n), (abc, 3));
        assert_eq!(sha256_file(&path)?, abc);
        Ok(())
    }

    #[test]
    fn refuses_to_grow_past_the_limit() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut file = HashingFile::create(&dir.path().join("x"), Some(4), origin())?;
        file.push(b"abcd")?;
        assert!(matches!(
            file.push(b"e"),
            Err(Error::TooLarge { size: 4, .. })
        ));
        Ok(())
    }
}
