//! HTML (and the XHTML chapters of EPUB) to blocks: headings h1-h6, paragraphs, list items,
//! table rows, pre/code. Scripts, styles, navigation, page chrome and hidden elements are
//! dropped.
//!
//! Nothing here recurses: the walk keeps its own stack, so nesting depth costs heap, not
//! call stack. Parsing is bounded by [`depth`].

mod depth;

use crate::builder::DocBuilder;
use crate::error::{Result, Warning};
use ego_tree::NodeRef;
use ragtune_core::{BlockKind, ExtractedDocument, Format};
use scraper::{ElementRef, Node};
use std::path::Path;

pub(crate) fn load(path: &Path, warnings: &mut Vec<Warning>) -> Result<ExtractedDocument> {
    let source = crate::load::read_text(path, warnings)?;
    let mut b = DocBuilder::new();
    let page = extract(&source, &mut b);
    if let Some(w) = page.depth_warning(path, None) {
        warnings.push(w);
    }
    b.metadata.extend(page.meta);
    Ok(b.finish(path.display().to_string(), Format::Html))
}

/// What a page gave besides its blocks.
pub(crate) struct Page {
    /// Head metadata: title, author, description, language.
    pub meta: Vec<(String, String)>,
    /// Start tags dropped because they nested deeper than [`depth::MAX_DEPTH`].
    pub flattened: usize,
}

impl Page {
    /// The warning for a page that nested too deep; `part` names the chapter of a book.
    pub fn depth_warning(&self, path: &Path, part: Option<&str>) -> Option<Warning> {
        (self.flattened > 0).then(|| {
            let what = part.map_or_else(|| "the page".to_owned(), |p| format!("chapter {p}"));
            Warning::new(
                path,
                format!(
                    "{what} nests elements deeper than {}; {} tags below that depth were \
                     dropped and their text kept in the enclosing element",
                    depth::MAX_DEPTH,
                    self.flattened
                ),
            )
        })
    }
}

/// Appends the page's blocks to `b`.
pub(crate) fn extract(source: &str, b: &mut DocBuilder) -> Page {
    let (doc, flattened) = depth::parse_document(source);
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
    w.walk(root);
    w.flush(BlockKind::Paragraph);
    Page { meta, flattened }
}

/// Elements whose content is never document text.
fn skipped(el: &ElementRef) -> bool {
    skipped_tag(el.value().name(), |a| el.attr(a))
}

/// [`skipped`] for a tag not in a tree yet: its name and a lookup of its attributes.
fn skipped_tag<'a>(name: &str, attr: impl Fn(&str) -> Option<&'a str>) -> bool {
    if matches!(
        name,
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
    ) || attr("hidden").is_some()
        || attr("aria-hidden") == Some("true")
        || attr("style").is_some_and(hidden_by_style)
    {
        return true;
    }
    if let Some(role) = attr("role")
        && matches!(role, "navigation" | "search" | "contentinfo" | "banner")
    {
        return true;
    }
    attr("class").is_some_and(|classes| {
        classes.split_ascii_whitespace().any(|c| {
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
    })
}

/// The open elements of a run of inline HTML tags (Markdown's raw inline HTML): each tag's
/// name and whether it hides its content as the HTML loader would (`hidden`, a hiding inline
/// style, `<script>`...).
#[derive(Debug, Default)]
pub(crate) struct InlineTags {
    open: Vec<(String, bool)>,
}

impl InlineTags {
    /// Follows one raw tag (`<span style="display:none">`, `</span>`, `<br/>`).
    pub(crate) fn follow(&mut self, tag: &str) {
        let tag = tag.trim();
        if let Some(rest) = tag.strip_prefix("</") {
            let name = rest.trim_end_matches('>').trim().to_ascii_lowercase();
            if let Some(i) = self.open.iter().rposition(|(n, _)| *n == name) {
                self.open.truncate(i);
            }
            return;
        }
        if !tag.starts_with('<') || tag.starts_with("<!") || tag.starts_with("<?") {
            return;
        }
        let fragment = scraper::Html::parse_fragment(tag);
        let Some(el) = fragment
            .root_element()
            .descendants()
            .skip(1)
            .find_map(ElementRef::wrap)
        else {
            return;
        };
        let name = el.value().name();
        let void = matches!(
            name,
            "br" | "img" | "hr" | "wbr" | "input" | "meta" | "link" | "source" | "col"
        );
        if !void && !tag.ends_with("/>") {
            self.open.push((name.to_owned(), skipped(&el)));
        }
    }

    /// Whether text here is inside an element that hides it.
    pub(crate) fn hiding(&self) -> bool {
        self.open.iter().any(|(_, hidden)| *hidden)
    }

    /// Forgets every open tag (at the end of a block: inline HTML does not cross blocks).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }
}

/// Whether an inline style hides the element: `display: none`, `visibility: hidden` (or
/// `collapse`), `font-size: 0` in any unit; in any case and spacing, with `!important`
/// and CSS comments or without. Hidden text is what a reader never sees and an injected
/// instruction hides in.
fn hidden_by_style(style: &str) -> bool {
    let style = strip_css_comments(style);
    style.split(';').any(|decl| {
        let Some((property, value)) = decl.split_once(':') else {
            return false;
        };
        let property = property.trim().to_ascii_lowercase();
        let mut value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        value.make_ascii_lowercase();
        let value = value.strip_suffix("!important").unwrap_or(&value);
        match property.as_str() {
            "display" => value == "none",
            "visibility" => matches!(value, "hidden" | "collapse"),
            "font-size" => {
                let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
                !number.is_empty() && number.parse::<f64>().is_ok_and(|n| n == 0.0)
            }
            _ => false,
        }
    })
}

fn strip_css_comments(style: &str) -> std::borrow::Cow<'_, str> {
    if !style.contains("/*") {
        return style.into();
    }
    let (mut out, mut rest) = (String::with_capacity(style.len()), style);
    while let Some(open) = rest.find("/*") {
        out.push_str(&rest[..open]);
        rest = rest[open + 2..]
            .split_once("*/")
            .map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out.into()
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

/// Elements whose start and end separate the text around them.
fn breaks_line(name: &str) -> bool {
    is_block(name)
        || matches!(
            name,
            "br" | "p"
                | "li"
                | "tr"
                | "td"
                | "th"
                | "table"
                | "pre"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
        )
}

/// The walk's to-do list: nodes to visit (with the block kind their loose text belongs
/// to) and blocks to close once their children are done.
enum Step<'a> {
    Visit(NodeRef<'a, Node>, BlockKind),
    Flush(BlockKind),
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

    /// Visits the children of `root` in document order.
    fn walk(&mut self, root: ElementRef) {
        let mut todo = Vec::new();
        push_children(&mut todo, *root, &BlockKind::Paragraph);
        while let Some(step) = todo.pop() {
            match step {
                Step::Flush(kind) => self.flush(kind),
                Step::Visit(node, ctx) => match node.value() {
                    // Source newlines are plain whitespace in HTML; only <br> breaks a line.
                    Node::Text(t) => self
                        .buf
                        .extend(t.chars().map(|c| if c.is_whitespace() { ' ' } else { c })),
                    Node::Element(_) => {
                        if let Some(el) = ElementRef::wrap(node) {
                            self.element(el, ctx, &mut todo);
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// Handles one element; what is left to do for its children goes on `todo`.
    fn element<'a>(&mut self, el: ElementRef<'a>, ctx: BlockKind, todo: &mut Vec<Step<'a>>) {
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
                let text = text_under(el, false);
                self.b.push(BlockKind::Code, &text);
            }
            "table" => {
                self.flush(ctx);
                self.table(el);
            }
            "li" => {
                self.flush(ctx);
                todo.push(Step::Flush(BlockKind::ListItem));
                push_children(todo, *el, &BlockKind::ListItem);
            }
            "p" => {
                // A paragraph inside a list item is still that item's text.
                let inner = if ctx == BlockKind::ListItem {
                    ctx.clone()
                } else {
                    BlockKind::Paragraph
                };
                self.flush(ctx);
                todo.push(Step::Flush(inner.clone()));
                push_children(todo, *el, &inner);
            }
            _ if is_block(name) => {
                self.flush(ctx.clone());
                todo.push(Step::Flush(ctx.clone()));
                push_children(todo, *el, &ctx);
            }
            _ => push_children(todo, *el, &ctx),
        }
    }

    fn table(&mut self, table: ElementRef) {
        for child in table.children().filter_map(ElementRef::wrap) {
            if skipped(&child) {
                continue;
            }
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
            .filter(|c| matches!(c.value().name(), "td" | "th") && !skipped(c))
            .map(inline_text)
            .collect();
        self.b.push_row(&cells);
    }
}

/// Queues the children of `node` so they are visited in document order.
fn push_children<'a>(todo: &mut Vec<Step<'a>>, node: NodeRef<'a, Node>, ctx: &BlockKind) {
    todo.extend(node.children().rev().map(|c| Step::Visit(c, ctx.clone())));
}

/// All text under an element on one line: blocks and line breaks become spaces.
fn inline_text(el: ElementRef) -> String {
    text_under(el, true)
}

/// The text under `el`, skipping what [`skipped`] drops; with `spaced`, blocks, cells and
/// line breaks are set off by spaces.
fn text_under(el: ElementRef, spaced: bool) -> String {
    enum Item<'a> {
        Node(NodeRef<'a, Node>),
        Space,
    }
    let mut out = String::new();
    let mut todo: Vec<Item> = el.children().rev().map(Item::Node).collect();
    while let Some(item) = todo.pop() {
        let node = match item {
            Item::Space => {
                out.push(' ');
                continue;
            }
            Item::Node(node) => node,
        };
        match node.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) => {
                if ElementRef::wrap(node).is_some_and(|c| skipped(&c)) {
                    continue;
                }
                let name = e.name();
                let space = spaced
                    && (name == "br"
                        || is_block(name)
                        || matches!(name, "p" | "li" | "tr" | "td" | "th"));
                if space {
                    out.push(' ');
                    todo.push(Item::Space);
                }
                todo.extend(node.children().rev().map(Item::Node));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_styles_that_hide() {
        for style in [
            "display:none",
            "DISPLAY : NONE",
            "color: red; display: none !important;",
            "display:none!IMPORTANT",
            "display:/* x */none",
            "visibility:hidden",
            "Visibility: Collapse",
            "font-size:0",
            "font-size: 0px",
            "font-size:0em",
            "font-size: 0pt !important",
            "font-size:0.0rem",
            "font-size:0%",
        ] {
            assert!(hidden_by_style(style), "{style}");
        }
        for style in [
            "",
            "display:block",
            "display: inline",
            "visibility: visible",
            "font-size: 0.5em",
            "font-size:10px",
            "font-size: small",
            "content: 'display:none'",
            "display",
        ] {
            assert!(!hidden_by_style(style), "{style}");
        }
    }

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
