//! Zip + XML formats (docx, pptx, odt, epub): the archive is opened through the zip-bomb
//! guard, then each format walks its XML parts with roxmltree.

use crate::error::{Error, Result, Warning};
use crate::zipguard::{Archive, ZipLimits};
use crate::{docx, epub, odt, pptx};
use ragtune_core::{ExtractedDocument, Format, Metadata};
use roxmltree::{Document, Node, ParsingOptions};
use std::path::Path;

pub(crate) fn load(
    path: &Path,
    format: Format,
    limits: ZipLimits,
    warnings: &mut Vec<Warning>,
) -> Result<ExtractedDocument> {
    let mut zip = Archive::open(path, limits)?;
    let b = match format {
        Format::Docx => docx::extract(path, &mut zip)?,
        Format::Pptx => pptx::extract(path, &mut zip)?,
        Format::Odt => odt::extract(path, &mut zip)?,
        Format::Epub => epub::extract(path, &mut zip, warnings)?,
        _ => unreachable!("not a zip + XML format"),
    };
    if b.text().is_empty() {
        warnings.push(Warning::new(path, "no text found in the document"));
    }
    Ok(b.finish(path.display().to_string(), format))
}

/// Reads a required XML member; its absence means the file is not what its name says.
pub(crate) fn member(path: &Path, zip: &mut Archive, name: &str) -> Result<String> {
    zip.read_string(name)?.ok_or_else(|| {
        Error::malformed(
            path,
            format!(
                "the archive has no {name}, so it is not a valid {} file",
                ext(path)
            ),
        )
    })
}

fn ext(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// The deepest element nesting accepted. Real documents nest a few dozen levels; the walkers
/// recurse once a level, so a hostile file nested 100,000 deep would overflow the stack.
const MAX_DEPTH: usize = 1024;

pub(crate) fn parse<'a>(path: &Path, name: &str, xml: &'a str) -> Result<Document<'a>> {
    let opts = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(xml, opts)
        .map_err(|e| Error::malformed(path, format!("{name} is not well-formed XML ({e})")))?;
    // Nodes come in document order, so a parent's depth is known before its children's.
    let mut depth = vec![0usize; doc.descendants().count() + 1];
    for n in doc.descendants().filter(|n| n.is_element()) {
        let d = n.parent().map_or(0, |p| depth[p.id().get_usize()]) + 1;
        if d > MAX_DEPTH {
            return Err(Error::malformed(
                path,
                format!(
                    "{name} nests elements more than {MAX_DEPTH} deep, which no real document does"
                ),
            ));
        }
        depth[n.id().get_usize()] = d;
    }
    Ok(doc)
}

/// An element's attribute by local name, whatever its namespace prefix.
pub(crate) fn attr<'a>(n: Node<'a, '_>, local: &str) -> Option<&'a str> {
    n.attributes()
        .find(|a| a.name() == local)
        .map(|a| a.value())
}

pub(crate) fn is(n: Node, local: &str) -> bool {
    n.is_element() && n.tag_name().name() == local
}

pub(crate) fn child<'a, 'i>(n: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is(*c, local))
}

pub(crate) fn children<'a, 'i>(
    n: Node<'a, 'i>,
    local: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(move |c| is(*c, local))
}

/// Dublin Core title and creator from a metadata part (docProps/core.xml, meta.xml, OPF).
pub(crate) fn dublin_core(doc: &Document, metadata: &mut Metadata) {
    for n in doc.descendants().filter(|n| n.is_element()) {
        let key = match n.tag_name().name() {
            "title" => "title",
            "creator" => "author",
            "language" => "language",
            _ => continue,
        };
        // Text nodes only: an element's `text()` repeats its first text child.
        let text: String = n
            .descendants()
            .filter(|t| t.is_text())
            .filter_map(|t| t.text())
            .collect();
        let text = text.trim();
        if !text.is_empty() && !metadata.contains_key(key) {
            metadata.insert(key.into(), text.to_owned());
        }
    }
}

/// Parses an optional metadata member into `metadata`; a broken one is ignored, as the
/// document text does not depend on it.
pub(crate) fn optional_meta(zip: &mut Archive, name: &str, metadata: &mut Metadata) {
    if let Ok(Some(xml)) = zip.read_string(name)
        && let Ok(doc) = Document::parse(&xml)
    {
        dublin_core(&doc, metadata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: every title and author came out twice ("DeepDeep").
    #[test]
    fn dublin_core_values_are_not_doubled() {
        let xml = r#"<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Deep <i>Book</i></dc:title><dc:creator>Ann</dc:creator></metadata>"#;
        let doc = Document::parse(xml).unwrap();
        let mut meta = Metadata::new();
        dublin_core(&doc, &mut meta);
        assert_eq!(meta["title"], "Deep Book");
        assert_eq!(meta["author"], "Ann");
    }
}
