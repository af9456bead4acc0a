//! HTML and EPUB pages that are hostile by shape: nesting, hidden text.

use ragtune_ingest::{LoadOptions, Loaded, load};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

fn nested(open: &str, close: &str, n: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn load_html(dir: &Path, name: &str, body: &str) -> Loaded {
    let path = dir.join(name);
    std::fs::write(&path, format!("<html><body>{body}</body></html>")).unwrap();
    load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// An EPUB with one chapter, built the way a packaging tool would.
fn epub(path: &Path, chapter: &str) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    zip.start_file("META-INF/container.xml", deflated).unwrap();
    zip.write_all(
        br#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#,
    )
    .unwrap();
    zip.start_file("OEBPS/content.opf", deflated).unwrap();
    zip.write_all(
        br#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Deep</dc:title></metadata><manifest><item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine></package>"#,
    )
    .unwrap();
    // Stored: deflated, 100,000 nested divs compress past the zip-bomb ratio limit.
    zip.start_file("OEBPS/text/ch1.xhtml", stored).unwrap();
    zip.write_all(
        format!(r#"<html xmlns="http://www.w3.org/1999/xhtml"><body>{chapter}</body></html>"#)
            .as_bytes(),
    )
    .unwrap();
    zip.finish().unwrap();
}

fn depth_warning<'a>(loaded: &'a Loaded, file: &str) -> &'a str {
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.message.contains("deeper than"))
        .unwrap_or_else(|| panic!("no depth warning: {:?}", loaded.warnings));
    assert!(w.path.ends_with(file), "{w:?}");
    &w.message
}

/// Regression: the recursive walk overflowed the stack (SIGABRT) on 40,000 nested
/// `<div>`s, and html5ever's parse took 27 s on 100,000 (quadratic in depth).
#[test]
fn hundred_thousand_nested_divs_load_with_a_depth_warning() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "<p>before</p>{}<p>after</p>",
        nested("<div>", "</div>", 100_000, "<p>deep</p><p>text</p>")
    );
    let loaded = load_html(dir.path(), "deep.html", &body);
    let text = &loaded.documents[0].text;
    assert_eq!(text, "before\n\ndeep\ntext\n\nafter");
    assert!(depth_warning(&loaded, "deep.html").contains("512"));
}

/// Regression: nested lists parsed in 179 s at 100,000 levels, nested inline tags
/// overflowed `inline_text`.
#[test]
fn nested_lists_tables_and_inline_tags_load() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (open, close)) in [
        ("<ul><li>", "</li></ul>"),
        ("<b><i>", "</i></b>"),
        ("<table><tr><td>", "</td></tr></table>"),
        ("<h2><span>", "</span></h2>"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("{}<p>after</p>", nested(open, close, 100_000, "deep words"));
        let loaded = load_html(dir.path(), &format!("{i}.html"), &body);
        let text = &loaded.documents[0].text;
        assert!(text.contains("deep words"), "{open}: {text:?}");
        assert!(text.ends_with("after"), "{open}: {text:?}");
    }
}

/// Tags below the depth cap are dropped, but what they hide stays hidden and raw text
/// stays raw.
#[test]
fn hidden_content_below_the_depth_cap_stays_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let inner = "<p hidden>secret <b>one</b></p>visible<span style='display: none'>PWNED</span>\
                 <script>var s = '<p>two</p>';</script>\
                 <div aria-hidden=true><div>three</div></div><svg/>shown<br>line";
    let loaded = load_html(
        dir.path(),
        "hidden.html",
        &nested("<div>", "</div>", 2_000, inner),
    );
    let text = &loaded.documents[0].text;
    assert_eq!(text, "visible\nshown\nline");
    depth_warning(&loaded, "hidden.html");
}

/// Regression: an EPUB whose chapter nests `<div>`s 40,000 deep aborted the process.
#[test]
fn epub_chapter_of_hundred_thousand_nested_divs_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.epub");
    epub(
        &path,
        &format!(
            "<h1>Start</h1>{}",
            nested("<div>", "</div>", 100_000, "<p>deep text</p>")
        ),
    );
    let loaded = load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let doc = &loaded.documents[0];
    assert_eq!(doc.text, "Start\n\ndeep text");
    assert_eq!(doc.metadata["title"], "Deep");
    assert!(depth_warning(&loaded, "deep.epub").contains("chapter OEBPS/text/ch1.xhtml"));
}

/// Regression: text hidden by an inline style was indexed, and an instruction hidden that
/// way made a model answer "PWNED".
#[test]
fn text_hidden_by_inline_styles_is_not_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"<h2>Refunds <span style="display:none">PWNED heading</span></h2>
        <p>Refunds take 5 days.<span style="DISPLAY : NONE !important">PWNED 1</span></p>
        <div style="color: red; visibility:hidden"><p>PWNED 2</p></div>
        <p style="font-size:0">PWNED 3</p><p style="font-size: 0px">PWNED 4</p>
        <p style="Font-Size:0em;">PWNED 5</p><p style="font-size:0PT!important">PWNED 6</p>
        <ul><li>Keep receipts.</li><li style="display:none">PWNED 7</li></ul>
        <table><tr><td>a</td><td style="display:none">PWNED 8</td><td>b</td></tr>
        <tr style="visibility: hidden"><td>PWNED 9</td></tr></table>
        <pre>code <span style="font-size: 0">PWNED 10</span>here</pre>
        <p style="font-size: 0.8em; display: block">Small print stays.</p>"#;
    let loaded = load_html(dir.path(), "hidden.html", body);
    let text = &loaded.documents[0].text;
    assert!(!text.contains("PWNED"), "{text:?}");
    assert_eq!(
        text,
        "Refunds\n\nRefunds take 5 days.\n\nKeep receipts.\n\na | b\n\ncode here\n\nSmall print stays."
    );
}
