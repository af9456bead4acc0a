//! EPUB: the XHTML chapters in spine order, each through the HTML extractor; title and
//! author from the package document.

use crate::builder::DocBuilder;
use crate::error::{Error, Result, Warning};
use crate::office::{attr, dublin_core, is, member, parse};
use crate::zipguard::Archive;
use std::collections::HashMap;
use std::path::Path;

pub(crate) fn extract(
    path: &Path,
    zip: &mut Archive,
    warnings: &mut Vec<Warning>,
) -> Result<DocBuilder> {
    let container = member(path, zip, "META-INF/container.xml")?;
    let container = parse(path, "META-INF/container.xml", &container)?;
    let opf_name = container
        .descendants()
        .find(|n| is(*n, "rootfile"))
        .and_then(|n| attr(n, "full-path"))
        .ok_or_else(|| Error::malformed(path, "META-INF/container.xml names no package document"))?
        .to_owned();
    let opf_xml = member(path, zip, &opf_name)?;
    let opf = parse(path, &opf_name, &opf_xml)?;
    let base = opf_name.rsplit_once('/').map_or("", |(dir, _)| dir);
    let manifest: HashMap<&str, &str> = opf
        .descendants()
        .filter(|n| is(*n, "item"))
        .filter_map(|n| Some((attr(n, "id")?, attr(n, "href")?)))
        .collect();
    let mut b = DocBuilder::new();
    dublin_core(&opf, &mut b.metadata);
    let spine = opf
        .descendants()
        .filter(|n| is(*n, "itemref") && attr(*n, "linear") != Some("no"));
    for idref in spine.filter_map(|n| attr(n, "idref")) {
        let Some(href) = manifest.get(idref) else {
            warnings.push(Warning::new(
                path,
                format!("spine item {idref} is not in the manifest; skipped"),
            ));
            continue;
        };
        let name = join(base, &percent_decode(href));
        match zip.read_string(&name)? {
            Some(xhtml) => {
                // Chapter titles repeat the book title; keep the book's own metadata.
                let page = crate::html::extract(&xhtml, &mut b);
                warnings.extend(page.depth_warning(path, Some(&name)));
            }
            None => warnings.push(Warning::new(
                path,
                format!("chapter {name} is missing from the archive; skipped"),
            )),
        }
    }
    Ok(b)
}

/// Resolves `href` against the package document's folder, folding `..`.
fn join(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for seg in href.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(
            join("OEBPS", "text/ch%201.xhtml"),
            "OEBPS/text/ch%201.xhtml"
        );
        assert_eq!(join("OEBPS/x", "../ch1.xhtml#top"), "OEBPS/ch1.xhtml");
        assert_eq!(join("", "ch1.xhtml"), "ch1.xhtml");
        assert_eq!(percent_decode("ch%201%zz"), "ch 1%zz");
    }
}
