//! Plain text read in bounded segments: a 200 MB file never sits in memory whole.
//!
//! Each segment holds at most `segment_bytes` of decoded text, cut after a blank line when
//! one falls in the second half of the window (else after a newline, else at whitespace), so
//! paragraphs rarely straddle segments. Peak memory is about twice `segment_bytes` plus the
//! 64 KiB read buffer, whatever the file size.

use crate::builder::plain_text;
use crate::error::{Error, Result, Warning};
use crate::load::Segment;
use ragtune_core::{ExtractedDocument, Format, Metadata};
use std::fs::File;
use std::io::{BufRead, Read};
use std::path::PathBuf;

const READ_CHUNK: usize = 64 << 10;

/// Incremental lossy UTF-8 decoding: a sequence split across reads is completed by the
/// next read; a broken one becomes U+FFFD and is counted.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    carry: Vec<u8>,
    pub invalid: u64,
}

impl Utf8Decoder {
    pub fn decode(&mut self, bytes: &[u8], out: &mut String) {
        let owned;
        let mut rest: &[u8] = if self.carry.is_empty() {
            bytes
        } else {
            self.carry.extend_from_slice(bytes);
            owned = std::mem::take(&mut self.carry);
            &owned
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => return out.push_str(s),
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // valid_up_to() guarantees this prefix decodes.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.invalid += 1;
                            rest = &after[n..];
                        }
                        None => {
                            self.carry = after.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Flushes an incomplete sequence left at the end of the input.
    pub fn finish(&mut self, out: &mut String) {
        if !self.carry.is_empty() {
            self.carry.clear();
            out.push(char::REPLACEMENT_CHARACTER);
            self.invalid += 1;
        }
    }
}

/// Where the next segment of a streamed file starts, and what was reported so far: the
/// bookkeeping every streaming loader shares.
#[derive(Debug, Default)]
pub(crate) struct SegmentCursor {
    pub offset: usize,
    /// A segment was handed out already.
    pub emitted: bool,
    reported_invalid: u64,
}

impl SegmentCursor {
    /// Closes a segment of `len` bytes: returns where it starts and its warnings (an empty
    /// file, invalid UTF-8 decoded since the previous segment).
    pub fn close(
        &mut self,
        path: &std::path::Path,
        len: usize,
        invalid: u64,
        empty_file: &str,
    ) -> (usize, Vec<Warning>) {
        let mut warnings = Vec::new();
        if !self.emitted && len == 0 {
            warnings.push(Warning::new(path, empty_file));
        }
        if invalid > self.reported_invalid {
            warnings.push(invalid_utf8_warning(path, invalid - self.reported_invalid));
            self.reported_invalid = invalid;
        }
        let offset = self.offset;
        self.offset += len;
        self.emitted = true;
        (offset, warnings)
    }
}

pub(crate) fn invalid_utf8_warning(path: &std::path::Path, count: u64) -> Warning {
    Warning::new(
        path,
        format!(
            "{count} byte sequence(s) are not valid UTF-8 and were replaced with U+FFFD; \
             re-save the file as UTF-8 to keep those characters"
        ),
    )
}

pub(crate) struct TextStream {
    file: File,
    path: PathBuf,
    source: String,
    decoder: Utf8Decoder,
    pending: String,
    segment_bytes: usize,
    eof: bool,
    cursor: SegmentCursor,
}

impl TextStream {
    pub fn new(path: PathBuf, file: File, segment_bytes: usize) -> Self {
        TextStream {
            file,
            source: path.display().to_string(),
            path,
            decoder: Utf8Decoder::default(),
            pending: String::new(),
            segment_bytes: segment_bytes.max(64),
            eof: false,
            cursor: SegmentCursor::default(),
        }
    }

    fn fill(&mut self) -> Result<()> {
        let mut buf = vec![0u8; READ_CHUNK];
        while !self.eof && self.pending.len() < self.segment_bytes {
            let n = match self.file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&self.path, e)),
            };
            if n == 0 {
                self.eof = true;
                self.decoder.finish(&mut self.pending);
            } else {
                self.decoder.decode(&buf[..n], &mut self.pending);
            }
            if !self.cursor.emitted && self.pending.starts_with('\u{feff}') {
                self.pending.drain(..3);
            }
        }
        Ok(())
    }
}

impl Iterator for TextStream {
    type Item = Result<Segment>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill() {
            self.eof = true;
            self.cursor.emitted = true;
            self.pending.clear();
            return Some(Err(e));
        }
        if self.pending.is_empty() && self.cursor.emitted {
            return None;
        }
        let cut = if self.eof && self.pending.len() <= self.segment_bytes {
            self.pending.len()
        } else {
            find_cut(&self.pending, self.segment_bytes)
        };
        let rest = self.pending.split_off(cut);
        // Cleaned before its length counts, so offsets are those of the cleaned document.
        let (text, blocks) = plain_text(std::mem::replace(&mut self.pending, rest));
        let (offset, warnings) = self.cursor.close(
            &self.path,
            text.len(),
            self.decoder.invalid,
            "the file is empty",
        );
        let document = ExtractedDocument {
            source: self.source.clone(),
            format: Format::Text,
            blocks,
            text,
            metadata: Metadata::new(),
        };
        Some(Ok(Segment {
            document,
            offset,
            warnings,
        }))
    }
}

/// Where to end a segment of at most `limit` bytes of `s`: after the last blank line in
/// the second half of the window, else the last newline, else the last whitespace, else
/// the last char boundary.
pub(crate) fn find_cut(s: &str, limit: usize) -> usize {
    let mut limit = limit.min(s.len());
    while !s.is_char_boundary(limit) {
        limit -= 1;
    }
    let window = &s[..limit];
    let lower = limit / 2;
    if let Some(p) = window.rfind("\n\n").filter(|&p| p >= lower) {
        return p + 2;
    }
    if let Some(p) = window.rfind('\n').filter(|&p| p >= lower) {
        return p + 1;
    }
    if let Some((p, c)) = window
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .filter(|&(p, _)| p >= lower)
    {
        return p + c.len_utf8();
    }
    if limit == 0 {
        // Cannot happen with limit >= 4 bytes; still make progress.
        s.chars().next().map_or(0, char::len_utf8)
    } else {
        limit
    }
}

/// Reads one line (newline dropped) into `buf`; `Ok(None)` at the end of input,
/// `Ok(Some(true))` when the line was longer than `cap` bytes and was skipped.
pub(crate) fn read_line_capped(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut any, mut too_long) = (false, false);
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(any.then_some(too_long));
        }
        any = true;
        let newline = avail.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(avail.len());
        if !too_long {
            if buf.len() + take > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        let consumed = newline.map_or(take, |n| n + 1);
        r.consume(consumed);
        if newline.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_joins_sequences_split_across_reads() {
        let bytes = "é€😀".as_bytes();
        for split in 0..bytes.len() {
            let (mut d, mut out) = (Utf8Decoder::default(), String::new());
            d.decode(&bytes[..split], &mut out);
            d.decode(&bytes[split..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, "é€😀", "split at {split}");
            assert_eq!(d.invalid, 0);
        }
    }

    #[test]
    fn decoder_replaces_invalid_bytes_and_truncated_tail() {
        let (mut d, mut out) = (Utf8Decoder::default(), String::new());
        d.decode(b"a\xffb\xe2\x82", &mut out);
        d.finish(&mut out);
        assert_eq!(out, "a\u{fffd}b\u{fffd}");
        assert_eq!(d.invalid, 2);
    }

    #[test]
    fn cuts_prefer_blank_lines_then_newlines_then_spaces() {
        assert_eq!(find_cut("aaaa\n\nbbbb cc\ndd", 16), 14);
        assert_eq!(find_cut("aaaaaaaaa\n\nbb cc", 16), 11);
        assert_eq!(find_cut("aaaaaa\n\nbb cc dd", 16), 14);
        assert_eq!(find_cut("aaaaaaaaaa bb", 12), 11);
        assert_eq!(find_cut("ééééé", 5), 4);
    }

    #[test]
    fn long_lines_are_skipped_not_buffered() {
        let mut input = std::io::Cursor::new(b"short\r\nwaaaaaaaaaaay too long\nok".to_vec());
        let mut buf = Vec::new();
        assert_eq!(
            read_line_capped(&mut input, &mut buf, 8).unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"short");
        assert_eq!(
            read_line_capped(&mut input, &mut buf, 8).unwrap(),
            Some(true)
        );
        assert_eq!(
            read_line_capped(&mut input, &mut buf, 8).unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"ok");
        assert_eq!(read_line_capped(&mut input, &mut buf, 8).unwrap(), None);
    }
}
