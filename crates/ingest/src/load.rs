//! The front door: detect a file's format, run its loader, hand back segments.

use crate::error::{Error, Result, Warning};
use crate::format::{detect, fs_open};
use crate::json::JsonOptions;
use crate::zipguard::ZipLimits;
use crate::{csv, html, json, markdown, office, pdf, stream, xlsx};
use ragtune_core::{ExtractedDocument, Format};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// How files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    pub json: JsonOptions,
    pub zip: ZipLimits,
    /// Most bytes of text in one streamed segment (plain text, CSV) and the longest JSONL
    /// line. Memory for a streamed file stays near twice this, whatever the file size.
    pub segment_bytes: usize,
    /// Largest file of a format that is loaded whole (PDF, HTML, Markdown, JSON, office
    /// files), in bytes.
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            json: JsonOptions::default(),
            zip: ZipLimits::default(),
            segment_bytes: 1 << 20,
            max_file_bytes: 256 << 20,
        }
    }
}

/// A piece of loader output. A file loaded whole gives one segment per document with
/// `offset` 0; a streamed file gives consecutive segments of one document whose texts,
/// concatenated, are the document's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The document, holding only this segment's text; blocks point into that text.
    pub document: ExtractedDocument,
    /// Byte offset of `document.text` in the whole document's text.
    pub offset: usize,
    /// What went wrong but did not stop loading (no text layer, invalid UTF-8...).
    pub warnings: Vec<Warning>,
}

impl Segment {
    pub(crate) fn whole(document: ExtractedDocument) -> Self {
        Segment {
            document,
            offset: 0,
            warnings: Vec::new(),
        }
    }
}

/// The segments of one file, in order. An `Err` item is a record that could not be read
/// (a bad JSONL line): later items still come.
pub struct Segments {
    inner: Box<dyn Iterator<Item = Result<Segment>> + Send>,
    format: Format,
}

impl Segments {
    pub fn format(&self) -> Format {
        self.format
    }
}

impl Iterator for Segments {
    type Item = Result<Segment>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// Opens a file for loading. Plain text, CSV and JSONL stream lazily in bounded segments;
/// other formats are read and extracted here, so their errors come from this call.
pub fn open(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Segments> {
    let path = path.as_ref();
    let format = detect(path)?;
    let owned = path.to_owned();
    let inner: Box<dyn Iterator<Item = Result<Segment>> + Send> = match format {
        Format::Text => Box::new(stream::TextStream::new(
            owned,
            fs_open(path)?,
            opts.segment_bytes,
        )),
        Format::Csv => Box::new(csv::CsvStream::new(
            owned,
            fs_open(path)?,
            opts.segment_bytes,
        )?),
        Format::Jsonl => Box::new(json::JsonlStream::new(
            owned,
            fs_open(path)?,
            opts.json.clone(),
            opts.segment_bytes,
        )),
        _ => Box::new(load_whole(path, format, opts)?.into_iter().map(Ok)),
    };
    Ok(Segments { inner, format })
}

/// Runs a whole-file loader; a panic inside a third-party parser becomes an error for
/// this file instead of ending the process.
fn load_whole(path: &Path, format: Format, opts: &LoadOptions) -> Result<Vec<Segment>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > opts.max_file_bytes {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            format: format.as_str(),
            size,
            limit: opts.max_file_bytes,
        });
    }
    if size == 0 {
        let mut seg = Segment::whole(empty_document(path, format));
        seg.warnings.push(Warning::new(path, "the file is empty"));
        return Ok(vec![seg]);
    }
    let run = || -> Result<Vec<Segment>> {
        let mut warnings = Vec::new();
        let docs = match format {
            Format::Pdf => vec![pdf::load(path, &mut warnings)?],
            Format::Html => vec![html::load(path, &mut warnings)?],
            Format::Markdown => vec![markdown::load(path, &mut warnings)?],
            Format::Json => json::load(path, &read(path)?, &opts.json)?,
            Format::Xlsx => vec![xlsx::load(path, opts.zip, &mut warnings)?],
            Format::Docx | Format::Pptx | Format::Odt | Format::Epub => {
                vec![office::load(path, format, opts.zip, &mut warnings)?]
            }
            Format::Text | Format::Csv | Format::Jsonl | Format::Sql => {
                unreachable!("streamed or not a file format")
            }
        };
        let mut segments: Vec<Segment> = docs.into_iter().map(Segment::whole).collect();
        if let Some(first) = segments.first_mut() {
            first.warnings = warnings;
        }
        Ok(segments)
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::malformed(
            path,
            format!(
                "the {} parser crashed on this file ({what})",
                format.as_str()
            ),
        ))
    })
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads a text-like file whole, replacing invalid UTF-8 (with a warning).
pub(crate) fn read_text(path: &Path, warnings: &mut Vec<Warning>) -> Result<String> {
    let bytes = read(path)?;
    let mut decoder = stream::Utf8Decoder::default();
    let mut text = String::with_capacity(bytes.len());
    decoder.decode(&bytes, &mut text);
    decoder.finish(&mut text);
    if decoder.invalid > 0 {
        warnings.push(stream::invalid_utf8_warning(path, decoder.invalid));
    }
    Ok(text)
}

pub(crate) fn empty_document(path: &Path, format: Format) -> ExtractedDocument {
    ExtractedDocument {
        source: path.display().to_string(),
        format,
        text: String::new(),
        blocks: Vec::new(),
        metadata: Default::default(),
    }
}

/// Everything loaded from one file, with streamed segments joined back into documents.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Vec<ExtractedDocument>,
    pub warnings: Vec<Warning>,
    /// Records that were skipped (bad JSONL lines); the rest of the file was loaded.
    pub errors: Vec<Error>,
}

/// Loads a file whole. For big text, CSV or JSONL files prefer [`open`], which streams.
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    for item in open(path, opts)? {
        let seg = match item {
            Ok(seg) => seg,
            Err(e) => {
                loaded.errors.push(e);
                continue;
            }
        };
        loaded.warnings.extend(seg.warnings);
        match loaded.documents.last_mut() {
            Some(doc) if seg.offset > 0 && doc.source == seg.document.source => {
                let shift = doc.text.len();
                doc.text.push_str(&seg.document.text);
                doc.blocks
                    .extend(seg.document.blocks.into_iter().map(|mut b| {
                        b.start += shift;
                        b.end += shift;
                        b
                    }));
                doc.metadata.extend(seg.document.metadata);
            }
            _ => loaded.documents.push(seg.document),
        }
    }
    Ok(loaded)
}

/// The outcome for one file found by [`load_all`].
#[derive(Debug)]
pub struct FileOutcome {
    pub path: PathBuf,
    pub result: Result<Loaded>,
}
