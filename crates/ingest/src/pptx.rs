//! PPTX: slides in presentation order (page = slide number), the title placeholder as a
//! heading, body placeholders as list items, other text boxes as paragraphs, tables as rows.

use crate::builder::DocBuilder;
use crate::error::Result;
use crate::office::{attr, child, children, is, member, optional_meta, parse};
use crate::zipguard::Archive;
use ragtune_core::BlockKind;
use roxmltree::Node;
use std::path::Path;

pub(crate) fn extract(path: &Path, zip: &mut Archive) -> Result<DocBuilder> {
    let mut b = DocBuilder::new();
    let slides = slide_order(path, zip)?;
    for (i, name) in slides.iter().enumerate() {
        let Some(xml) = zip.read_string(name)? else {
            continue;
        };
        let doc = parse(path, name, &xml)?;
        b.page = Some(i as u32 + 1);
        if let Some(tree) = doc.descendants().find(|n| is(*n, "spTree")) {
            shapes(tree, &mut b);
        }
    }
    b.page = None;
    b.metadata.insert("slides".into(), slides.len().to_string());
    optional_meta(zip, "docProps/core.xml", &mut b.metadata);
    Ok(b)
}

/// Slide part names in the order of presentation.xml's slide list; numeric order of
/// `ppt/slides/slideN.xml` when the list cannot be read.
fn slide_order(path: &Path, zip: &mut Archive) -> Result<Vec<String>> {
    let pres = member(path, zip, "ppt/presentation.xml")?;
    let rels = zip
        .read_string("ppt/_rels/presentation.xml.rels")?
        .unwrap_or_default();
    let mut ordered = Vec::new();
    if let (Ok(pres), Ok(rels)) = (
        roxmltree::Document::parse(&pres),
        roxmltree::Document::parse(&rels),
    ) {
        for id in pres.descendants().filter(|n| is(*n, "sldId")) {
            // r:id (namespaced) names the relationship; the plain id is a number.
            let rid = id
                .attributes()
                .find(|a| a.name() == "id" && a.namespace().is_some());
            let Some(rid) = rid.map(|a| a.value()) else {
                continue;
            };
            let target = rels
                .descendants()
                .find(|r| is(*r, "Relationship") && attr(*r, "Id") == Some(rid))
                .and_then(|r| attr(r, "Target"));
            if let Some(t) = target {
                ordered.push(format!(
                    "ppt/{}",
                    t.trim_start_matches('/').trim_start_matches("ppt/")
                ));
            }
        }
    }
    if ordered.is_empty() {
        let mut names: Vec<(u32, String)> = zip
            .names()
            .into_iter()
            .filter_map(|n| {
                let num = n
                    .strip_prefix("ppt/slides/slide")?
                    .strip_suffix(".xml")?
                    .parse()
                    .ok()?;
                Some((num, n))
            })
            .collect();
        names.sort();
        ordered = names.into_iter().map(|(_, n)| n).collect();
    }
    Ok(ordered)
}

fn shapes(tree: Node, b: &mut DocBuilder) {
    for shape in tree.children().filter(|c| c.is_element()) {
        match shape.tag_name().name() {
            "sp" => text_shape(shape, b),
            "grpSp" => shapes(shape, b),
            "graphicFrame" => {
                for tbl in shape.descendants().filter(|n| is(*n, "tbl")) {
                    for tr in children(tbl, "tr") {
                        let cells: Vec<String> = children(tr, "tc")
                            .map(|tc| para_texts(tc).join(" "))
                            .collect();
                        b.push_row(&cells);
                    }
                }
            }
            _ => {}
        }
    }
}

fn text_shape(sp: Node, b: &mut DocBuilder) {
    let ph = sp.descendants().find(|n| is(*n, "ph"));
    let ph_type = ph.map(|p| attr(p, "type").unwrap_or("body"));
    let Some(body) = child(sp, "txBody") else {
        return;
    };
    for p in children(body, "p") {
        let text = para_text(p);
        let ppr = child(p, "pPr");
        let bullet =
            ppr.is_some_and(|x| child(x, "buChar").is_some() || child(x, "buAutoNum").is_some());
        let no_bullet = ppr.is_some_and(|x| child(x, "buNone").is_some());
        let kind = match ph_type {
            Some("title" | "ctrTitle") => BlockKind::Heading { level: 1 },
            Some("subTitle") => BlockKind::Heading { level: 2 },
            Some("body" | "obj") if !no_bullet => BlockKind::ListItem,
            _ if bullet => BlockKind::ListItem,
            _ => BlockKind::Paragraph,
        };
        b.push(kind, &text);
    }
}

fn para_texts(n: Node) -> Vec<String> {
    n.descendants()
        .filter(|d| is(*d, "p"))
        .map(para_text)
        .collect()
}

/// Runs of a drawingML paragraph; `a:br` is a line break.
fn para_text(p: Node) -> String {
    let mut out = String::new();
    for d in p.descendants() {
        if is(d, "t") {
            out.push_str(d.text().unwrap_or_default());
        } else if is(d, "br") {
            out.push('\n');
        }
    }
    out
}
