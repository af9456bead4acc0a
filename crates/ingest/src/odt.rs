//! ODT: `text:h` headings with their outline level, paragraphs, list items, tables as rows.
//! Frames (text boxes) inside a paragraph become their own blocks after it.

use crate::builder::DocBuilder;
use crate::error::Result;
use crate::office::{attr, is, member, optional_meta, parse};
use crate::zipguard::Archive;
use ragtune_core::BlockKind;
use roxmltree::Node;
use std::path::Path;

pub(crate) fn extract(path: &Path, zip: &mut Archive) -> Result<DocBuilder> {
    let mut b = DocBuilder::new();
    let xml = member(path, zip, "content.xml")?;
    let doc = parse(path, "content.xml", &xml)?;
    if let Some(body) = doc.descendants().find(|n| is(*n, "body")) {
        container(body, &mut b, BlockKind::Paragraph);
    }
    optional_meta(zip, "meta.xml", &mut b.metadata);
    Ok(b)
}

fn container(n: Node, b: &mut DocBuilder, ctx: BlockKind) {
    for c in n.children().filter(|c| c.is_element()) {
        match c.tag_name().name() {
            "h" => {
                let level = attr(c, "outline-level")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1);
                paragraph(c, b, BlockKind::Heading { level });
            }
            "p" => paragraph(c, b, ctx.clone()),
            "list-item" | "list-header" => container(c, b, BlockKind::ListItem),
            "table" => table(c, b),
            "annotation" | "note" | "tracked-changes" | "forms" | "sequence-decls" => {}
            _ => container(c, b, ctx.clone()),
        }
    }
}

fn paragraph(p: Node, b: &mut DocBuilder, kind: BlockKind) {
    let (mut text, mut nested) = (String::new(), Vec::new());
    span_text(p, &mut text, &mut nested);
    b.push(kind, &text);
    for frame in nested {
        container(frame, b, BlockKind::Paragraph);
    }
}

fn table(t: Node, b: &mut DocBuilder) {
    for row in t.descendants().filter(|n| is(*n, "table-row")) {
        // Rows of a nested table show up in the outer cell's text instead.
        if row.ancestors().find(|a| is(*a, "table")) != Some(t) {
            continue;
        }
        let cells: Vec<String> = row
            .children()
            .filter(|c| is(*c, "table-cell"))
            .map(|cell| {
                let (mut text, mut nested) = (String::new(), Vec::new());
                for p in cell.descendants().filter(|n| is(*n, "p") || is(*n, "h")) {
                    span_text(p, &mut text, &mut nested);
                    text.push(' ');
                }
                text
            })
            .collect();
        b.push_row(&cells);
    }
}

fn span_text<'a, 'i>(n: Node<'a, 'i>, out: &mut String, nested: &mut Vec<Node<'a, 'i>>) {
    for c in n.children() {
        if let Some(t) = c.text().filter(|_| c.is_text()) {
            out.push_str(t);
            continue;
        }
        match c.tag_name().name() {
            "s" => {
                let count = attr(c, "c").and_then(|v| v.parse().ok()).unwrap_or(1usize);
                out.extend(std::iter::repeat_n(' ', count.min(64)));
            }
            "tab" => out.push('\t'),
            "line-break" => out.push('\n'),
            "frame" | "text-box" => nested.push(c),
            "note" | "annotation" | "annotation-end" => {}
            _ => span_text(c, out, nested),
        }
    }
}
