//! Zip-based formats (docx, xlsx, pptx, odt, epub) checked against zip bombs before any
//! member is inflated: the central directory's declared sizes must respect [`ZipLimits`],
//! and reads stop at the declared size, so a lying header cannot inflate more either.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use zip::ZipArchive;

/// Limits on a zip archive, checked before decompressing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Most members (files and folders) an archive may list.
    pub max_entries: usize,
    /// Largest uncompressed size of one member, in bytes.
    pub max_entry_bytes: u64,
    /// Largest uncompressed size of all members together, in bytes.
    pub max_total_bytes: u64,
    /// Largest uncompressed/compressed ratio of a member bigger than 1 MiB. Office XML
    /// compresses 5-30x; a bomb of zeros compresses about 1000x.
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: 10_000,
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 200,
        }
    }
}

/// Members smaller than this are exempt from the ratio check: tiny files compress oddly.
const RATIO_EXEMPT_BYTES: u64 = 1 << 20;

pub(crate) struct Archive {
    zip: ZipArchive<BufReader<File>>,
    path: PathBuf,
    limits: ZipLimits,
}

impl Archive {
    /// Opens the archive and checks every member's declared size; inflates nothing.
    pub fn open(path: &Path, limits: ZipLimits) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut zip = ZipArchive::new(BufReader::new(file))
            .map_err(|e| Error::malformed(path, format!("not a readable zip archive ({e})")))?;
        check(&mut zip, path, &limits)?;
        Ok(Archive {
            zip,
            path: path.to_owned(),
            limits,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(|n| n.ok())
            .map(Into::into)
            .collect()
    }

    /// Reads a member whole (at most its declared size), or `None` if it is absent.
    pub fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(index) = self.zip.index_for_name(name) else {
            return Ok(None);
        };
        let path = &self.path;
        let mut member = self
            .zip
            .by_index(index)
            .map_err(|e| Error::malformed(path, format!("cannot open member {name} ({e})")))?;
        let cap = member.size().min(self.limits.max_entry_bytes);
        let mut buf = Vec::with_capacity(cap as usize);
        (&mut member)
            .take(cap + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::malformed(path, format!("cannot inflate member {name} ({e})")))?;
        if buf.len() as u64 > cap {
            return Err(Error::ZipBomb {
                path: path.clone(),
                reason: format!("member {name} inflates past its declared size of {cap} bytes"),
            });
        }
        Ok(Some(buf))
    }

    /// Reads a member as text, replacing invalid UTF-8.
    pub fn read_string(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .read(name)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Inflates every member into nothing, stopping at its declared size; for archives a
    /// third-party reader (calamine) inflates by itself afterwards.
    pub fn verify_all(&mut self) -> Result<()> {
        for i in 0..self.zip.len() {
            let path = &self.path;
            let mut member = self
                .zip
                .by_index(i)
                .map_err(|e| Error::malformed(path, format!("cannot open member {i} ({e})")))?;
            let cap = member.size();
            let n = std::io::copy(&mut (&mut member).take(cap + 1), &mut std::io::sink())
                .map_err(|e| Error::malformed(path, format!("cannot inflate member {i} ({e})")))?;
            if n > cap {
                return Err(Error::ZipBomb {
                    path: path.clone(),
                    reason: format!(
                        "member {} inflates past its declared size of {cap} bytes",
                        member.name().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }
}

fn check(zip: &mut ZipArchive<BufReader<File>>, path: &Path, limits: &ZipLimits) -> Result<()> {
    let bomb = |reason: String| Error::ZipBomb {
        path: path.to_owned(),
        reason,
    };
    if zip.len() > limits.max_entries {
        return Err(bomb(format!(
            "{} members, more than the limit of {} (ZipLimits::max_entries)",
            zip.len(),
            limits.max_entries
        )));
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let member = zip
            .by_index_raw(i)
            .map_err(|e| Error::malformed(path, format!("bad zip entry {i} ({e})")))?;
        let name = member.name().unwrap_or_default().into_owned();
        let (size, packed) = (member.size(), member.compressed_size());
        if size > limits.max_entry_bytes {
            return Err(bomb(format!(
                "member {name} inflates to {size} bytes, more than the limit of {} (ZipLimits::max_entry_bytes)",
                limits.max_entry_bytes
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(bomb(format!(
                "members inflate to more than {} bytes together (ZipLimits::max_total_bytes)",
                limits.max_total_bytes
            )));
        }
        if size > RATIO_EXEMPT_BYTES && size / packed.max(1) > limits.max_ratio {
            return Err(bomb(format!(
                "member {name} has a compression ratio of {}:1, more than the limit of {}:1 (ZipLimits::max_ratio)",
                size / packed.max(1),
                limits.max_ratio
            )));
        }
    }
    Ok(())
}
