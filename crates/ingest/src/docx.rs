//! DOCX: paragraphs with their styles (Title, Heading 1-9, list paragraphs), tables as rows
//! of cells, text boxes after the paragraph that anchors them. Deleted text, field codes
//! and the fallback copies of drawings are skipped.

use crate::builder::DocBuilder;
use crate::error::Result;
use crate::office::{attr, child, children, is, member, optional_meta, parse};
use crate::zipguard::Archive;
use ragtune_core::BlockKind;
use roxmltree::Node;
use std::collections::HashMap;
use std::path::Path;

pub(crate) fn extract(path: &Path, zip: &mut Archive) -> Result<DocBuilder> {
    let mut b = DocBuilder::new();
    let styles = match zip.read_string("word/styles.xml")? {
        Some(xml) => Styles::parse(&parse(path, "word/styles.xml", &xml)?),
        None => Styles::default(),
    };
    let xml = member(path, zip, "word/document.xml")?;
    let doc = parse(path, "word/document.xml", &xml)?;
    if let Some(body) = doc.descendants().find(|n| is(*n, "body")) {
        Walker {
            b: &mut b,
            styles: &styles,
        }
        .container(body);
    }
    optional_meta(zip, "docProps/core.xml", &mut b.metadata);
    Ok(b)
}

/// What a paragraph style means for structure.
#[derive(Debug, Default)]
struct Styles {
    heading: HashMap<String, u8>,
    list: HashMap<String, bool>,
}

impl Styles {
    fn parse(doc: &roxmltree::Document) -> Self {
        // styleId -> (lowercase name, outline level, basedOn)
        type Raw = (Option<String>, Option<u8>, Option<String>);
        let mut raw: HashMap<String, Raw> = HashMap::new();
        for s in doc.descendants().filter(|n| is(*n, "style")) {
            let Some(id) = attr(s, "styleId") else {
                continue;
            };
            let name = child(s, "name")
                .and_then(|n| attr(n, "val"))
                .map(str::to_lowercase);
            let outline = child(s, "pPr")
                .and_then(|p| child(p, "outlineLvl"))
                .and_then(|o| attr(o, "val"))
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|&v| v < 9)
                .map(|v| v + 1);
            let based = child(s, "basedOn")
                .and_then(|n| attr(n, "val"))
                .map(str::to_owned);
            raw.insert(id.to_owned(), (name, outline, based));
        }
        let mut styles = Styles::default();
        for id in raw.keys() {
            // Follow basedOn a few steps: custom styles often inherit "Heading 2".
            let (mut cur, mut level, mut list) = (Some(id.clone()), None, false);
            for _ in 0..5 {
                let Some((name, outline, based)) = cur.as_ref().and_then(|c| raw.get(c)) else {
                    break;
                };
                let name = name.clone().unwrap_or_default();
                level = level
                    .or_else(|| heading_level(&name, cur.as_deref().unwrap_or_default()))
                    .or(*outline);
                list |= name.contains("list");
                cur = based.clone();
            }
            if let Some(level) = level {
                styles.heading.insert(id.clone(), level);
            }
            styles.list.insert(id.clone(), list);
        }
        styles
    }
}

fn heading_level(name: &str, id: &str) -> Option<u8> {
    if name == "title" || id == "Title" {
        return Some(1);
    }
    let digits = |s: &str| s.trim().parse::<u8>().ok().filter(|l| (1..=9).contains(l));
    name.strip_prefix("heading")
        .and_then(digits)
        .or_else(|| id.strip_prefix("Heading").and_then(digits))
}

struct Walker<'a> {
    b: &'a mut DocBuilder,
    styles: &'a Styles,
}

impl Walker<'_> {
    fn container(&mut self, n: Node) {
        for c in n.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "p" => self.paragraph(c),
                "tbl" => self.table(c),
                "Fallback" | "sectPr" => {}
                _ => self.container(c),
            }
        }
    }

    fn paragraph(&mut self, p: Node) {
        let ppr = child(p, "pPr");
        let style = ppr
            .and_then(|x| child(x, "pStyle"))
            .and_then(|s| attr(s, "val"))
            .unwrap_or("");
        let numbered = ppr.and_then(|x| child(x, "numPr")).is_some();
        let kind = match self
            .styles
            .heading
            .get(style)
            .copied()
            .or_else(|| heading_level(&style.to_lowercase(), style))
        {
            Some(level) => BlockKind::Heading { level },
            None if numbered || self.styles.list.get(style).copied().unwrap_or(false) => {
                BlockKind::ListItem
            }
            None => BlockKind::Paragraph,
        };
        let (mut text, mut nested) = (String::new(), Vec::new());
        run_text(p, &mut text, &mut nested);
        self.b.push(kind, &text);
        for inner in nested {
            self.container(inner);
        }
    }

    fn table(&mut self, tbl: Node) {
        for tr in children(tbl, "tr") {
            let cells: Vec<String> = children(tr, "tc")
                .map(|tc| {
                    let (mut text, mut nested) = (String::new(), Vec::new());
                    for p in tc.descendants().filter(|n| is(*n, "p")) {
                        run_text(p, &mut text, &mut nested);
                        text.push(' ');
                    }
                    text
                })
                .collect();
            self.b.push_row(&cells);
        }
    }
}

/// Text of a paragraph's runs. Text boxes inside it are collected into `nested` to be
/// emitted as their own blocks.
fn run_text<'a, 'i>(n: Node<'a, 'i>, out: &mut String, nested: &mut Vec<Node<'a, 'i>>) {
    for c in n.children() {
        if c.is_text() {
            // Only w:t (and m:t) hold text; whitespace between tags is formatting.
            if is(n, "t") {
                out.push_str(c.text().unwrap_or_default());
            }
            continue;
        }
        match c.tag_name().name() {
            "r" if hidden_run(c) => {}
            "txbxContent" => nested.push(c),
            "Fallback" | "pPr" | "rPr" | "delText" | "instrText" | "del" => {}
            "tab" => out.push('\t'),
            "br" | "cr" => out.push('\n'),
            "noBreakHyphen" => out.push('-'),
            _ => run_text(c, out, nested),
        }
    }
}

/// A run formatted as hidden (`w:vanish`): Word does not show it, so it is not the document's
/// text, and it is where an instruction for a model hides.
fn hidden_run(r: Node) -> bool {
    child(r, "rPr")
        .and_then(|p| child(p, "vanish"))
        .is_some_and(|v| !matches!(attr(v, "val"), Some("0" | "false" | "off")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_levels_from_names_and_ids() {
        assert_eq!(heading_level("heading 3", "Titre3"), Some(3));
        assert_eq!(heading_level("", "Heading2"), Some(2));
        assert_eq!(heading_level("title", "x"), Some(1));
        assert_eq!(heading_level("heading 12", "x"), None);
        assert_eq!(heading_level("normal", "Normal"), None);
    }
}
