//! PDF with pdf-extract (over lopdf): text page by page, each page's paragraphs as blocks
//! carrying the 1-based page number. Lines wrapped inside a paragraph are joined with a
//! space. A page pdf-extract fails on (it panics on some fonts) is read with lopdf's simpler
//! extractor, or skipped, with a warning; a PDF without a text layer gives an empty document
//! and a warning.

use crate::builder::DocBuilder;
use crate::error::{Error, Result, Warning};
use pdf_extract::{Dictionary, Document, Object, ObjectId, PlainTextOutput};
use ragtune_core::{BlockKind, ExtractedDocument, Format};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

pub(crate) fn load(path: &Path, warnings: &mut Vec<Warning>) -> Result<ExtractedDocument> {
    let bytes = crate::load::read(path)?;
    let mut doc = Document::load_mem(&bytes)
        .map_err(|e| Error::malformed(path, format!("not a readable PDF ({e})")))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(Error::malformed(
            path,
            "the PDF is encrypted with a password; save an unprotected copy and load that",
        ));
    }
    let pages = doc.get_pages();
    let mut b = DocBuilder::new();
    let (mut fallback, mut failed, mut extracted) = (Vec::new(), Vec::new(), Vec::new());
    for (&n, &id) in &pages {
        if !ancestry_ends(&doc, id) || !drawing_ends(&doc, id) {
            failed.push(n);
            continue;
        }
        let text = match page_text(&doc, n) {
            Some(text) => text,
            None => match catch_unwind(AssertUnwindSafe(|| doc.extract_text(&[n]))) {
                // lopdf's own extractor is cruder (words may run together) but rarely fails.
                Ok(Ok(text)) => {
                    fallback.push(n);
                    text
                }
                _ => {
                    failed.push(n);
                    continue;
                }
            },
        };
        extracted.push((n, paragraphs(&text)));
    }
    drop_running_lines(&mut extracted);
    for (n, paras) in extracted {
        b.page = Some(n);
        for para in paras {
            b.push(BlockKind::Paragraph, &para);
        }
    }
    if !fallback.is_empty() {
        warnings.push(Warning::new(
            path,
            format!("page(s) {fallback:?} were read with a simpler extractor; their text may run words together"),
        ));
    }
    if !failed.is_empty() {
        warnings.push(Warning::new(
            path,
            format!("the text of page(s) {failed:?} could not be extracted; they are left out"),
        ));
    }
    // Pages that failed have their own warning; "no text layer" is for pages read as empty.
    if b.text().is_empty() && pages.len() > failed.len() {
        warnings.push(Warning::new(
            path,
            "no text layer (a scanned or image-only PDF); run OCR on it (e.g. ocrmypdf) and load the result",
        ));
    }
    b.page = None;
    b.metadata.insert("pages".into(), pages.len().to_string());
    info(&doc, &mut b);
    Ok(b.finish(path.display().to_string(), Format::Pdf))
}

/// Whether page `id`'s chain of `/Parent` references ends. In a damaged or hostile file it can
/// loop (a page that is its own parent), and both extractors follow it forever looking for
/// inherited resources: such a page is left out.
fn ancestry_ends(doc: &Document, id: ObjectId) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut current = id;
    loop {
        if !seen.insert(current) {
            return false;
        }
        let parent = doc
            .get_dictionary(current)
            .and_then(|d| d.get(b"Parent"))
            .and_then(Object::as_reference);
        match parent {
            Ok(next) => current = next,
            Err(_) => return true,
        }
    }
}

/// Deeper nesting of XObjects drawn inside XObjects is refused (real files nest a few levels).
const MAX_XOBJECT_NESTING: usize = 32;
/// More XObject drawings in one page are refused.
const MAX_XOBJECT_DRAWS: usize = 100_000;

/// Whether drawing page `id` ends in reasonable time. pdf-extract draws every XObject a content
/// stream names (`Do`) by recursing into its content, so an XObject that draws itself (directly
/// or through others) overflows the stack, which aborts the whole process, and XObjects that
/// each draw the next many times take exponential time. Walks what pdf-extract would draw, with
/// the same resources, counting the drawings; such a page is left out.
fn drawing_ends(doc: &Document, id: ObjectId) -> bool {
    let Some(resources) = page_resources(doc, id) else {
        return true;
    };
    if xobjects(doc, resources).is_none() {
        return true; // Nothing to draw: no need to decode the content.
    }
    let Ok(content) = doc.get_page_content(id) else {
        return true;
    };
    draws(doc, &content, resources, &mut Vec::new()).is_some()
}

/// The resources of page `id` or of its nearest ancestor that has some (as pdf-extract
/// inherits them; the ancestry is known to end).
fn page_resources(doc: &Document, id: ObjectId) -> Option<&Dictionary> {
    let mut node = doc.get_dictionary(id).ok()?;
    loop {
        if let Some(resources) = node.get(b"Resources").ok().and_then(|r| dictionary(doc, r)) {
            return Some(resources);
        }
        let parent = node.get(b"Parent").and_then(Object::as_reference).ok()?;
        node = doc.get_dictionary(parent).ok()?;
    }
}

fn dictionary<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Dictionary> {
    doc.dereference(object).ok()?.1.as_dict().ok()
}

fn xobjects<'a>(doc: &'a Document, resources: &'a Dictionary) -> Option<&'a Dictionary> {
    resources
        .get(b"XObject")
        .ok()
        .and_then(|x| dictionary(doc, x))
}

/// How many XObject drawings `content` makes, nested ones included; `None` when they loop,
/// nest too deep or exceed [`MAX_XOBJECT_DRAWS`]. `path` holds the XObjects being drawn.
fn draws(
    doc: &Document,
    content: &[u8],
    resources: &Dictionary,
    path: &mut Vec<ObjectId>,
) -> Option<usize> {
    let Some(named) = xobjects(doc, resources) else {
        return Some(0);
    };
    let Ok(content) = pdf_extract::content::Content::decode(content) else {
        return Some(0); // pdf-extract cannot decode it either.
    };
    let mut times: std::collections::BTreeMap<&[u8], usize> = Default::default();
    for op in &content.operations {
        if op.operator == "Do"
            && let Some(Ok(name)) = op.operands.first().map(Object::as_name)
        {
            *times.entry(name).or_default() += 1;
        }
    }
    let mut total = 0usize;
    for (name, n) in times {
        let Some((id, stream)) = named
            .get(name)
            .ok()
            .and_then(|x| doc.dereference(x).ok())
            .and_then(|(id, x)| Some((id, x.as_stream().ok()?)))
        else {
            continue;
        };
        if id.is_some_and(|id| path.contains(&id)) || path.len() >= MAX_XOBJECT_NESTING {
            return None;
        }
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|r| dictionary(doc, r))
            .unwrap_or(resources);
        let inner = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        // A direct stream has no id; it cannot be reached again except through one that has.
        path.push(id.unwrap_or((0, 0)));
        let nested = draws(doc, &inner, own, path);
        path.pop();
        total = total.checked_add(n.checked_mul(nested? + 1)?)?;
        if total > MAX_XOBJECT_DRAWS {
            return None;
        }
    }
    Some(total)
}

/// pdf-extract's text of one page; `None` if it fails or panics (it unwraps on some
/// malformed fonts and CMaps).
fn page_text(doc: &Document, n: u32) -> Option<String> {
    let mut text = String::new();
    let ok = catch_unwind(AssertUnwindSafe(|| {
        let mut out = PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(doc, &mut out, n).is_ok()
    }));
    matches!(ok, Ok(true)).then_some(text)
}

/// Paragraphs of a page: blank lines separate them, wrapped lines are joined.
fn paragraphs(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in page.lines() {
        let line = visual_to_logical(line.trim());
        let line = line.as_ref();
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(line);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter().map(|p| collapse_leaders(&p)).collect()
}

/// Dot leaders of tables of contents (". . . . . 12") become one ellipsis: they carry no
/// meaning and would eat the token budget of a chunk.
fn collapse_leaders(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '.' {
            out.push(c);
            continue;
        }
        // Count dots, allowing one space between them.
        let (mut dots, mut end) = (1, i + 1);
        let rest = &p[i + 1..];
        let mut it = rest.char_indices().peekable();
        while let Some((j, d)) = it.next() {
            match d {
                '.' => {
                    dots += 1;
                    end = i + 1 + j + 1;
                }
                ' ' if it.peek().is_some_and(|&(_, n)| n == '.') => {}
                _ => break,
            }
        }
        if dots >= 4 {
            out.push('…');
            while chars.peek().is_some_and(|&(k, _)| k < end) {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Removes running headers and footers: short paragraphs among the first or last two of a
/// page that recur (digits ignored, so page numbers match) on at least 5% of the pages,
/// and on three or more. They would otherwise repeat in every chunk of the book.
fn drop_running_lines(pages: &mut [(u32, Vec<String>)]) {
    if pages.len() < 4 {
        return;
    }
    let key = |p: &str| -> String {
        let mut k = String::new();
        for c in p.chars() {
            let c = if c.is_ascii_digit() {
                '#'
            } else {
                c.to_ascii_lowercase()
            };
            if !(c == '#' && k.ends_with('#')) {
                k.push(c);
            }
        }
        k
    };
    let edges = |paras: &[String]| -> Vec<usize> {
        let n = paras.len();
        let mut idx: Vec<usize> = (0..n.min(2)).chain(n.saturating_sub(2)..n).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.retain(|&i| paras[i].chars().count() <= 100);
        idx
    };
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (_, paras) in pages.iter() {
        let mut seen: Vec<String> = edges(paras).into_iter().map(|i| key(&paras[i])).collect();
        seen.sort();
        seen.dedup();
        for k in seen {
            *counts.entry(k).or_insert(0) += 1;
        }
    }
    // Per-chapter headers recur only over the chapter's pages.
    let threshold = (pages.len() / 20).max(3);
    for (_, paras) in pages.iter_mut() {
        let drop: Vec<usize> = edges(paras)
            .into_iter()
            .filter(|&i| counts[&key(&paras[i])] >= threshold)
            .collect();
        for i in drop.into_iter().rev() {
            paras.remove(i);
        }
    }
}

/// pdf-extract emits right-to-left script (Arabic, Hebrew) in visual order, so each word
/// comes out reversed. For a line that is mostly RTL, reverse it and turn left-to-right runs
/// (Latin words, numbers) back: a simple inverse of the bidi algorithm, enough to recover
/// the words.
fn visual_to_logical(line: &str) -> std::borrow::Cow<'_, str> {
    let rtl = |c: char| matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF);
    let ltr = |c: char| c.is_alphanumeric() && !rtl(c);
    let (r, l) = line.chars().fold((0, 0), |(r, l), c| {
        (r + usize::from(rtl(c)), l + usize::from(ltr(c)))
    });
    if r <= l {
        return line.into();
    }
    let mut chars: Vec<char> = line.chars().rev().collect();
    let mut i = 0;
    while i < chars.len() {
        if !ltr(chars[i]) {
            i += 1;
            continue;
        }
        // A run of LTR characters, with '.', ',', ':' or '-' inside it (3.14, 2024-01).
        let mut j = i + 1;
        while j < chars.len()
            && (ltr(chars[j])
                || (".,:-".contains(chars[j]) && chars.get(j + 1).is_some_and(|&c| ltr(c))))
        {
            j += 1;
        }
        chars[i..j].reverse();
        i = j;
    }
    chars.into_iter().collect::<String>().into()
}

/// Title and author from the document information dictionary.
fn info(doc: &Document, b: &mut DocBuilder) {
    let info = match doc.trailer.get(b"Info") {
        Ok(Object::Reference(id)) => doc.get_dictionary(*id).ok(),
        Ok(Object::Dictionary(d)) => Some(d),
        _ => None,
    };
    let Some(info) = info else { return };
    for (key, name) in [(&b"Title"[..], "title"), (b"Author", "author")] {
        if let Ok(Object::String(bytes, _)) = info.get(key) {
            let text = pdf_string(bytes);
            if !text.trim().is_empty() {
                b.metadata.insert(name.into(), text.trim().to_owned());
            }
        }
    }
}

/// PDF text strings are UTF-16BE with a BOM, or PDFDocEncoding (Latin-1 for our purposes).
fn pdf_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        bytes.iter().map(|&c| c as char).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_headers_and_page_numbers_go() {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
        let mut pages: Vec<(u32, Vec<String>)> = (1..=6)
            .map(|n| {
                let body = format!("Body text about {}.", words[n as usize - 1]);
                (
                    n,
                    vec![format!("Chapter 1: Intro {n}"), body, n.to_string()],
                )
            })
            .collect();
        // Short pages: two paragraphs (once removed twice, a bug), one, none.
        pages.push((7, vec!["Chapter 1: Intro 7".into(), "7".into()]));
        pages.push((8, vec!["8".into()]));
        pages.push((9, vec![]));
        drop_running_lines(&mut pages);
        let left: Vec<usize> = pages.iter().map(|(_, p)| p.len()).collect();
        assert_eq!(left, [1, 1, 1, 1, 1, 1, 0, 0, 0]);
        assert_eq!(pages[2].1[0], "Body text about gamma.");
    }

    #[test]
    fn wrapped_lines_join_and_blank_lines_split() {
        assert_eq!(
            paragraphs("a line\n wrapped\n\n\nnext\n"),
            ["a line wrapped", "next"]
        );
        assert_eq!(pdf_string(b"\xfe\xff\x00H\x00i"), "Hi");
        assert_eq!(pdf_string(b"caf\xe9"), "café");
        // "بلغة R 3.5" as pdf-extract emits it: visual order.
        assert_eq!(visual_to_logical("3.5 R ةغلب"), "بلغة R 3.5");
        assert_eq!(visual_to_logical("plain text"), "plain text");
    }
}
