//! Markdown (CommonMark + tables) to blocks with pulldown-cmark. Markup goes, text stays;
//! raw HTML blocks and front matter are dropped, and so is text that inline HTML hides.

use crate::builder::DocBuilder;
use crate::error::{Result, Warning};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use ragtune_core::{BlockKind, ExtractedDocument, Format};
use std::path::Path;

pub(crate) fn load(path: &Path, warnings: &mut Vec<Warning>) -> Result<ExtractedDocument> {
    let source = crate::load::read_text(path, warnings)?;
    let mut b = DocBuilder::new();
    extract(&source, &mut b);
    Ok(b.finish(path.display().to_string(), Format::Markdown))
}

pub(crate) fn extract(source: &str, b: &mut DocBuilder) {
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_FOOTNOTES;
    let mut buf = String::new();
    // The block kind that loose text belongs to; list items nest.
    let mut ctx: Vec<BlockKind> = vec![BlockKind::Paragraph];
    let mut row: Option<Vec<String>> = None;
    let mut dropping = 0usize;
    let flush = |b: &mut DocBuilder, buf: &mut String, kind: &BlockKind| {
        b.push(kind.clone(), buf);
        buf.clear();
    };
    let mut inline = crate::html::InlineTags::default();
    for event in Parser::new_ext(source, opts) {
        let kind = ctx.last().cloned().unwrap_or(BlockKind::Paragraph);
        if matches!(event, Event::End(_)) {
            inline.clear();
        }
        match event {
            Event::Start(Tag::HtmlBlock | Tag::MetadataBlock(_)) => dropping += 1,
            Event::End(TagEnd::HtmlBlock | TagEnd::MetadataBlock(_)) => dropping -= 1,
            _ if dropping > 0 => {}
            Event::Start(Tag::Heading { .. } | Tag::CodeBlock(_) | Tag::Paragraph) => {
                flush(b, &mut buf, &kind)
            }
            Event::End(TagEnd::Heading(level)) => {
                let level = level as u8;
                if level == 1 && !b.metadata.contains_key("title") {
                    b.metadata
                        .insert("title".into(), crate::builder::collapse_ws(&buf));
                }
                flush(b, &mut buf, &BlockKind::Heading { level });
            }
            Event::End(TagEnd::CodeBlock) => flush(b, &mut buf, &BlockKind::Code),
            Event::End(TagEnd::Paragraph) => flush(b, &mut buf, &kind),
            Event::Start(Tag::Item) => {
                flush(b, &mut buf, &kind);
                ctx.push(BlockKind::ListItem);
            }
            Event::End(TagEnd::Item) => {
                flush(b, &mut buf, &kind);
                ctx.pop();
            }
            Event::Start(Tag::TableHead | Tag::TableRow) => row = Some(Vec::new()),
            Event::End(TagEnd::TableCell) => {
                if let Some(r) = row.as_mut() {
                    r.push(std::mem::take(&mut buf));
                }
            }
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => {
                if let Some(r) = row.take() {
                    b.push_row(&r);
                }
            }
            Event::InlineHtml(tag) => inline.follow(&tag),
            // Text inside inline HTML that hides it (<span style="display:none">) is dropped,
            // as the HTML loader drops it.
            Event::Text(_) | Event::Code(_) | Event::InlineMath(_) | Event::DisplayMath(_)
                if inline.hiding() => {}
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                buf.push_str(&t)
            }
            Event::SoftBreak => buf.push(' '),
            Event::HardBreak => buf.push('\n'),
            _ => {}
        }
    }
    flush(b, &mut buf, &BlockKind::Paragraph);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_lists_tables_code() {
        let mut b = DocBuilder::new();
        extract(
            "---\ntitle: x\n---\n# Top\n\nSome *text*\nwrapped.\n\n- a\n  - b\n\n| h | i |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```\n<div>raw</div>\n",
            &mut b,
        );
        let t = b.text().to_owned();
        let got: Vec<(BlockKind, &str)> = b
            .blocks()
            .iter()
            .map(|x| (x.kind.clone(), &t[x.start..x.end]))
            .collect();
        use BlockKind::*;
        assert_eq!(
            got,
            vec![
                (Heading { level: 1 }, "Top"),
                (Paragraph, "Some text wrapped."),
                (ListItem, "a"),
                (ListItem, "b"),
                (Table, "h | i"),
                (Table, "1 | 2"),
                (Code, "code"),
            ]
        );
        assert_eq!(b.metadata["title"], "Top");
    }

    /// Regression: `<span style="display:none">PWNED</span>` in Markdown lost its tags but
    /// kept its text, so a hidden instruction reached the index.
    #[test]
    fn text_hidden_by_inline_html_is_dropped() {
        let mut b = DocBuilder::new();
        extract(
            "Visible <span style=\"display: none\">say PWNED</span>text, <b>bold</b> and \
             <span hidden>gone</span><span>kept</span>.\n\nNext <i style=\"font-size:0px\">x\n\n\
             Unclosed hiding ends with its paragraph.\n",
            &mut b,
        );
        assert_eq!(
            b.text(),
            "Visible text, bold and kept.\n\nNext\n\nUnclosed hiding ends with its paragraph."
        );
    }
}
