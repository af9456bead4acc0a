//! HTML (and the XHTML chapters of EPUB) to blocks: headings h1-h6, paragraphs, list items,
//! table rows, pre/code. Scripts, styles, navigation and page chrome are dropped.

use crate::builder::DocBuilder;
use crate::error::{Result, Warning};
use ragtune_core::{BlockKind, ExtractedDocument, Format};
use scraper::{ElementRef, Html, Node};
use std::path::Path;

pub(crate) fn load(path: &Path, warnings: &mut Vec<Warning>) -> Result<ExtractedDocument> {
    let source = crate::load::read_text(path, warnings)?;
    let mut b = DocBuilder::new();
    let head = extract(&source, &mut b);
    b.metadata.extend(head);
    Ok(b.finish(path.display().to_string(), Format::Html))
}

/// Appends the page's blocks to `b`; returns head metadata (title, author, description,
/// language).
pub(crate) fn extract(source: &str, b: &mut DocBuilder) -> Vec<(String, String)> {
    let doc = Html::parse_document(source);
    let root = doc.root_element();
    let mut meta = Vec::new();
    if let Some(lang) = root.attr("lang") {
        meta.push(("language".to_owned(), lang.to_owned()));
    }
    for el in root.descendants().filter_map(ElementRef::wrap) {
        match el.value().name() {
            "title" if !meta.iter().any(|(k, _)| k == "title") => {
                let t = crate::builder::collapse_ws(&el.text().collect::<String>());
                if !t.is_empty() {
                    meta.push(("title".to_owned(), t));
                }
            }
            "meta" => {
                if let (Some(name @ ("author" | "description")), Some(content)) =
                    (el.attr("name"), el.attr("content"))
                {
                    meta.push((name.to_owned(), content.to_owned()));
                }
            }
            "body" => break,
            _ => {}
        }
    }
    let mut w = Walker {
        b,
        buf: String::new(),
    };
    w.walk(root, BlockKind::Paragraph);
    w.flush(BlockKind::Paragraph);
    meta
}

/// Elements whose content is never document text.
fn skipped(el: &ElementRef) -> bool {
    let e = el.value();
    if matches!(
        e.name(),
        "head"
            | "script"
            | "style"
            | "noscript"
            | "template"
            | "nav"
            | "svg"
            | "math"
            | "iframe"
            | "object"
            | "button"
            | "select"
            | "textarea"
            | "footer"
    ) || e.attr("hidden").is_some()
        || e.attr("aria-hidden") == Some("true")
    {
        return true;
    }
    if let Some(role) = e.attr("role")
        && matches!(role, "navigation" | "search" | "contentinfo" | "banner")
    {
        return true;
    }
    e.classes().any(|c| {
        matches!(
            c,
            "headerlink"
                | "navheader"
                | "navfooter"
                | "nav-panel"
                | "sphinxsidebar"
                | "mw-editsection"
        )
    })
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "center"
            | "dd"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "form"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "legend"
            | "main"
            | "menu"
            | "ol"
            | "section"
            | "summary"
            | "ul"
            | "caption"
    )
}

struct Walker<'b> {
    b: &'b mut DocBuilder,
    buf: String,
}

impl Walker<'_> {
    fn flush(&mut self, kind: BlockKind) {
        if !self.buf.trim().is_empty() {
            self.b.push(kind, &self.buf);
        }
        self.buf.clear();
    }

    fn walk(&mut self, el: ElementRef, ctx: BlockKind) {
        for child in el.children() {
            match child.value() {
                // Source newlines are plain whitespace in HTML; only <br> breaks a line.
                Node::Text(t) => self
                    .buf
                    .extend(t.chars().map(|c| if c.is_whitespace() { ' ' } else { c })),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        self.element(child, ctx.clone());
                    }
                }
                _ => {}
            }
        }
    }

    fn element(&mut self, el: ElementRef, ctx: BlockKind) {
        if skipped(&el) {
            return;
        }
        let name = el.value().name();
        match name {
            "br" => self.buf.push('\n'),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush(ctx);
                let level = name.as_bytes()[1] - b'0';
                let text = inline_text(el);
                self.b.push(BlockKind::Heading { level }, &text);
            }
            "pre" => {
                self.flush(ctx);
                let text: String = el.text().collect();
                self.b.push(BlockKind::Code, &text);
            }
            "table" => {
                self.flush(ctx);
                self.table(el);
            }
            "li" => {
                self.flush(ctx);
                self.walk(el, BlockKind::ListItem);
                self.flush(BlockKind::ListItem);
            }
            "p" => {
                // A paragraph inside a list item is still that item's text.
                let inner = if ctx == BlockKind::ListItem {
                    ctx.clone()
                } else {
                    BlockKind::Paragraph
                };
                self.flush(ctx);
                self.walk(el, inner.clone());
                self.flush(inner);
            }
            _ if is_block(name) => {
                self.flush(ctx.clone());
                self.walk(el, ctx.clone());
                self.flush(ctx);
            }
            _ => self.walk(el, ctx),
        }
    }

    fn table(&mut self, table: ElementRef) {
        for child in table.children().filter_map(ElementRef::wrap) {
            match child.value().name() {
                "caption" => self.b.push(BlockKind::Paragraph, &inline_text(child)),
                "thead" | "tbody" | "tfoot" => {
                    for row in child.children().filter_map(ElementRef::wrap) {
                        self.row(row);
                    }
                }
                _ => self.row(child),
            }
        }
    }

    fn row(&mut self, tr: ElementRef) {
        if tr.value().name() != "tr" || skipped(&tr) {
            return;
        }
        let cells: Vec<String> = tr
            .children()
            .filter_map(ElementRef::wrap)
            .filter(|c| matches!(c.value().name(), "td" | "th"))
            .map(inline_text)
            .collect();
        self.b.push_row(&cells);
    }
}

/// All text under an element on one line: blocks and line breaks become spaces.
fn inline_text(el: ElementRef) -> String {
    let mut out = String::new();
    collect(el, &mut out);
    out
}

fn collect(el: ElementRef, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(_) => {
                if let Some(child) = ElementRef::wrap(child)
                    && !skipped(&child)
                {
                    let name = child.value().name();
                    let spaced = name == "br"
                        || is_block(name)
                        || matches!(name, "p" | "li" | "tr" | "td" | "th");
                    if spaced {
                        out.push(' ');
                    }
                    collect(child, out);
                    if spaced {
                        out.push(' ');
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(html: &str) -> Vec<(BlockKind, String)> {
        let mut b = DocBuilder::new();
        extract(html, &mut b);
        let text = b.text().to_owned();
        b.blocks()
            .iter()
            .map(|x| (x.kind.clone(), text[x.start..x.end].to_owned()))
            .collect()
    }

    #[test]
    fn structure_survives_and_boilerplate_goes() {
        let got = blocks(
            "<html><head><title>T</title><style>x{}</style></head><body>\
             <nav>menu</nav><h2>Intro<a class=headerlink>¶</a></h2>\
             <p>Hello\n  <b>world</b><br>again</p><ul><li><p>one</p><ul><li>nested</li></ul></li></ul>\
             <table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>\
             <pre>fn main() {\n    x\n}</pre><script>alert(1)</script>tail</body></html>",
        );
        use BlockKind::*;
        assert_eq!(
            got,
            vec![
                (Heading { level: 2 }, "Intro".into()),
                (Paragraph, "Hello world\nagain".into()),
                (ListItem, "one".into()),
                (ListItem, "nested".into()),
                (Table, "a | b".into()),
                (Table, "1 | 2".into()),
                (Code, "fn main() {\n    x\n}".into()),
                (Paragraph, "tail".into()),
            ]
        );
    }
}
