//! Which loader reads a file: the extension decides, magic bytes confirm.

use crate::error::{Error, Result};
use ragtune_core::Format;
use std::io::Read;
use std::path::Path;

/// Extensions the loaders accept (lowercase, without the dot).
pub const SUPPORTED: &[&str] = &[
    "pdf", "docx", "html", "htm", "xhtml", "md", "markdown", "txt", "text", "csv", "tsv", "xlsx",
    "xlsm", "json", "jsonl", "ndjson", "pptx", "odt", "epub",
];

/// The format a file's extension names, if ragtune reads it.
pub fn format_for_path(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => Format::Pdf,
        "docx" => Format::Docx,
        "html" | "htm" | "xhtml" => Format::Html,
        "md" | "markdown" => Format::Markdown,
        "txt" | "text" => Format::Text,
        "csv" | "tsv" => Format::Csv,
        "xlsx" | "xlsm" => Format::Xlsx,
        "json" => Format::Json,
        "jsonl" | "ndjson" => Format::Jsonl,
        "pptx" => Format::Pptx,
        "odt" => Format::Odt,
        "epub" => Format::Epub,
        _ => return None,
    })
}

pub(crate) fn is_zip_format(format: Format) -> bool {
    matches!(
        format,
        Format::Docx | Format::Xlsx | Format::Pptx | Format::Odt | Format::Epub
    )
}

/// Detects the format from the extension and checks the first bytes agree with it: a PDF
/// must carry `%PDF-` in its first 1024 bytes (as readers accept), zip-based formats start
/// with `PK`, and text-like formats must not contain NUL bytes (binary junk). An empty file
/// passes: loaders turn it into an empty document with a warning.
pub fn detect(path: &Path) -> Result<Format> {
    let format = format_for_path(path).ok_or_else(|| Error::Unsupported {
        path: path.to_owned(),
        ext: path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })?;
    let mut head = Vec::with_capacity(1024);
    fs_open(path)?
        .take(1024)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    if head.is_empty() {
        return Ok(format);
    }
    let mismatch = |reason: String| Error::FormatMismatch {
        path: path.to_owned(),
        format,
        reason,
    };
    if format == Format::Pdf && !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(mismatch(format!(
            "it has no %PDF- header (starts with {})",
            describe(&head)
        )));
    }
    if is_zip_format(format) && !head.starts_with(b"PK") {
        return Err(mismatch(format!(
            "it is not a zip archive (starts with {})",
            describe(&head)
        )));
    }
    let text_like = matches!(
        format,
        Format::Html | Format::Markdown | Format::Text | Format::Csv | Format::Json | Format::Jsonl
    );
    let utf16_bom = head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]);
    if text_like && !utf16_bom && head.contains(&0) {
        return Err(mismatch(format!(
            "it contains NUL bytes, so it is binary, not text (starts with {})",
            describe(&head)
        )));
    }
    Ok(format)
}

pub(crate) fn fs_open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// The first bytes, printable, for error messages.
fn describe(head: &[u8]) -> String {
    let shown: String = head
        .iter()
        .take(8)
        .map(|&b| {
            if b.is_ascii_graphic() {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect();
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_map_case_insensitively() {
        assert_eq!(format_for_path(Path::new("a/B.PDF")), Some(Format::Pdf));
        assert_eq!(format_for_path(Path::new("x.xlsm")), Some(Format::Xlsx));
        assert_eq!(format_for_path(Path::new("x.ndjson")), Some(Format::Jsonl));
        assert_eq!(format_for_path(Path::new("x.exe")), None);
        assert_eq!(format_for_path(Path::new("README")), None);
    }

    #[test]
    fn describe_escapes_binary() {
        assert_eq!(describe(b"\x00ab\xff"), "\"\\x00ab\\xff\"");
    }
}
