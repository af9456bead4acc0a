//! CSV/TSV as a table: one block per row, cells joined by ` | `, the header row first (its
//! cells also go to `metadata["columns"]`). Streamed in segments like plain text.

use crate::builder::cell_text;
use crate::error::{Error, Result};
use crate::load::Segment;
use crate::stream::{SegmentCursor, Utf8Decoder};
use ragtune_core::{Block, BlockKind, ExtractedDocument, Format, Metadata};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

pub(crate) struct CsvStream {
    reader: csv::Reader<BufReader<File>>,
    path: PathBuf,
    source: String,
    segment_bytes: usize,
    record: csv::ByteRecord,
    decoder: Utf8Decoder,
    cursor: SegmentCursor,
    done: bool,
}

impl CsvStream {
    pub fn new(path: PathBuf, mut file: File, segment_bytes: usize) -> Result<Self> {
        let delimiter = sniff_delimiter(&path, &mut file)?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(BufReader::new(file));
        Ok(CsvStream {
            reader,
            source: path.display().to_string(),
            path,
            segment_bytes: segment_bytes.max(64),
            record: csv::ByteRecord::new(),
            decoder: Utf8Decoder::default(),
            cursor: SegmentCursor::default(),
            done: false,
        })
    }
}

/// Tab for `.tsv`; otherwise whichever of `,` `;` `\t` `|` is most frequent in the first line.
fn sniff_delimiter(path: &Path, file: &mut File) -> Result<u8> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        return Ok(b'\t');
    }
    let mut head = Vec::new();
    (&mut *file)
        .take(8192)
        .read_to_end(&mut head)
        .and_then(|_| file.rewind())
        .map_err(|e| Error::io(path, e))?;
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let count = |d: u8| line.iter().filter(|&&b| b == d).count();
    Ok([b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|&d| (count(d), d == b','))
        .unwrap_or(b','))
}

impl Iterator for CsvStream {
    type Item = Result<Segment>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (mut text, mut blocks, mut metadata) = (String::new(), Vec::new(), Metadata::new());
        while text.len() < self.segment_bytes {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    self.done = true;
                    return Some(Err(Error::malformed(
                        &self.path,
                        format!(
                            "unreadable CSV at line {line} ({e}); the rows before it were loaded"
                        ),
                    )));
                }
            }
            let cells: Vec<String> = self
                .record
                .iter()
                .map(|f| {
                    let mut s = String::new();
                    self.decoder.decode(f, &mut s);
                    self.decoder.finish(&mut s);
                    cell_text(&s)
                })
                .collect();
            let Some(last) = cells.iter().rposition(|c| !c.is_empty()) else {
                continue;
            };
            if !self.cursor.emitted && blocks.is_empty() {
                metadata.insert("columns".into(), cells[..=last].join(", "));
            }
            let start = text.len();
            text.push_str(&cells[..=last].join(" | "));
            blocks.push(Block {
                kind: BlockKind::Table,
                start,
                end: text.len(),
                page: None,
            });
            text.push('\n');
        }
        if self.cursor.emitted && text.is_empty() {
            return None;
        }
        let (offset, warnings) = self.cursor.close(
            &self.path,
            text.len(),
            self.decoder.invalid,
            "the file has no rows",
        );
        Some(Ok(Segment {
            document: ExtractedDocument {
                source: self.source.clone(),
                format: Format::Csv,
                text,
                blocks,
                metadata,
            },
            offset,
            warnings,
        }))
    }
}
