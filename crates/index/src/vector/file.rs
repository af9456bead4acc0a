//! The vector file: a header with the SQLite change sequence the vectors reflect, the ids and
//! the matrix, the HNSW graph when there is one, and a blake3 trailer so a truncated or damaged
//! file is detected (and rebuilt from SQLite) rather than trusted. Written to a temporary name,
//! synced and renamed, so a kill leaves either the old file or the new one.

use super::{ExactIndex, HnswIndex, HnswParams};
use crate::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"RTVECTOR";
const VERSION: u32 = 1;

/// What a vector file holds.
pub(crate) enum Stored {
    Exact(ExactIndex),
    Hnsw(HnswIndex),
}

/// Hashes everything written, for the trailer.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn write(path: &Path, seq: u64, stored: &Stored) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |e| Error::io(&tmp, e);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: blake3::Hasher::new(),
    };
    encode(&mut w, seq, stored).map_err(io)?;
    let digest = *w.hasher.finalize().as_bytes();
    let mut inner = w.inner;
    inner.write_all(&digest).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable; failure here only weakens power-loss safety.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn encode(w: &mut impl Write, seq: u64, stored: &Stored) -> std::io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    let (kind, dim, ids, data): (u8, usize, &[i64], &[f32]) = match stored {
        Stored::Exact(ix) => {
            let (ids, data) = ix.parts();
            (0, ix.dimension(), ids, data)
        }
        Stored::Hnsw(ix) => (1, ix.dim, &ix.ids, &ix.data),
    };
    w.write_all(&[kind])?;
    w.write_all(&(dim as u32).to_le_bytes())?;
    w.write_all(&seq.to_le_bytes())?;
    w.write_all(&(ids.len() as u64).to_le_bytes())?;
    for id in ids {
        w.write_all(&id.to_le_bytes())?;
    }
    let mut buf = Vec::with_capacity(1 << 16);
    for block in data.chunks(1 << 14) {
        buf.clear();
        block
            .iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
        w.write_all(&buf)?;
    }
    if let Stored::Hnsw(ix) = stored {
        let p = ix.params;
        for v in [p.m, p.ef_construction, p.ef_search] {
            w.write_all(&(v as u32).to_le_bytes())?;
        }
        w.write_all(&p.seed.to_le_bytes())?;
        w.write_all(&ix.rng.to_le_bytes())?;
        w.write_all(&ix.entry.map_or(-1i64, |e| e as i64).to_le_bytes())?;
        let deleted: Vec<u8> = ix.deleted.iter().map(|&d| d as u8).collect();
        w.write_all(&deleted)?;
        for layers in &ix.links {
            w.write_all(&[layers.len() as u8])?;
            for links in layers {
                w.write_all(&(links.len() as u32).to_le_bytes())?;
                for n in links {
                    w.write_all(&n.to_le_bytes())?;
                }
            }
        }
    }
    Ok(())
}

/// Reads a vector file. `Ok(None)` when it does not exist; an error when it is damaged.
pub(crate) fn read(path: &Path) -> Result<Option<(u64, Stored)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.to_owned(),
        what: "vector file",
        reason: reason.to_owned(),
    };
    if bytes.len() < 32 + MAGIC.len() {
        return Err(corrupt("too short"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != digest {
        return Err(corrupt("checksum mismatch (truncated or damaged)"));
    }
    let mut r = Reader { buf: body, pos: 0 };
    let parsed = decode(&mut r).ok_or_else(|| corrupt("malformed contents"))?;
    if r.pos != body.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Some(parsed))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode(r: &mut Reader) -> Option<(u64, Stored)> {
    if r.take(8)? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let kind = r.u8()?;
    let dim = r.u32()? as usize;
    let seq = r.u64()?;
    let n = usize::try_from(r.u64()?).ok()?;
    let ids: Vec<i64> = r
        .take(n.checked_mul(8)?)?
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let data: Vec<f32> = r
        .take(n.checked_mul(dim)?.checked_mul(4)?)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    match kind {
        0 => Some((seq, Stored::Exact(ExactIndex::from_parts(dim, ids, data)))),
        1 => {
            let params = HnswParams {
                m: r.u32()? as usize,
                ef_construction: r.u32()? as usize,
                ef_search: r.u32()? as usize,
                seed: r.u64()?,
            };
            let mut ix = HnswIndex::new(dim, params);
            ix.rng = r.u64()?;
            let entry = r.u64()? as i64;
            ix.entry = (entry >= 0).then_some(entry as u32);
            ix.deleted = r.take(n)?.iter().map(|&b| b != 0).collect();
            ix.links = Vec::with_capacity(n);
            for _ in 0..n {
                let layers = r.u8()? as usize;
                let mut node = Vec::with_capacity(layers);
                for _ in 0..layers {
                    let len = r.u32()? as usize;
                    let links: Vec<u32> = r
                        .take(len.checked_mul(4)?)?
                        .chunks_exact(4)
                        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    if links.iter().any(|&l| l as usize >= n) {
                        return None;
                    }
                    node.push(links);
                }
                if layers == 0 {
                    return None;
                }
                ix.links.push(node);
            }
            if ix.entry.is_some_and(|e| e as usize >= n) || (n > 0) != ix.entry.is_some() {
                return None;
            }
            ix.ids = ids;
            ix.data = data;
            Some((seq, Stored::Hnsw(HnswIndex::from_parts(ix))))
        }
        _ => None,
    }
}
