//! Each format on real files: structure survives extraction.

use crate::support::{assert_blocks_sane, corpus, headings, load_one, texts};
use ragtune_core::{BlockKind, Format};
use ragtune_ingest::LoadOptions;

#[test]
fn pdf_blocks_carry_page_numbers() {
    let (doc, _) = load_one("docling-testdata/pdf/multi_page.pdf");
    assert_eq!(doc.format, Format::Pdf);
    assert_blocks_sane(&doc);
    let pages: Vec<u32> = doc
        .blocks
        .iter()
        .map(|b| b.page.expect("every PDF block has a page"))
        .collect();
    assert_eq!(pages.first(), Some(&1));
    assert!(
        pages.windows(2).all(|w| w[0] <= w[1]),
        "pages in reading order"
    );
    assert_eq!(pages.last().copied(), doc.metadata["pages"].parse().ok());
    assert!(pages.last().unwrap() > &1);
    assert!(doc.text.contains("word processing"), "{}", &doc.text[..300]);
}

#[test]
fn scanned_pdf_is_empty_with_a_warning() {
    let (doc, loaded) = load_one("docling-testdata/ocr/ocr_test.pdf");
    assert!(doc.text.is_empty() && doc.blocks.is_empty());
    assert!(
        loaded.warnings.iter().any(|w| w.message.contains("OCR")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn docx_headings_lists_and_tables() {
    let (doc, _) = load_one("docling-testdata/docx/unit_test_headers.docx");
    assert_blocks_sane(&doc);
    let levels: Vec<(u8, &str)> = doc
        .blocks
        .iter()
        .filter_map(|b| match b.kind {
            BlockKind::Heading { level } => Some((level, &doc.text[b.start..b.end])),
            _ => None,
        })
        .collect();
    assert_eq!(
        &levels[..3],
        &[(1, "Test Document"), (1, "Section 1"), (2, "Section 1.1")]
    );
    assert!(levels.contains(&(3, "Section 1.2.3")));

    let (tables, _) = load_one("docling-testdata/docx/word_tables.docx");
    let rows = texts(&tables, |k| *k == BlockKind::Table);
    assert!(
        rows.contains(&"Header 0.0 | Header 0.1 | Header 0.2"),
        "{rows:?}"
    );
    assert!(rows.contains(&"Cell 1.0 | Cell 1.1 | Cell 1.2"));

    let (lists, _) = load_one("docling-testdata/docx/docx_lists.docx");
    assert!(texts(&lists, |k| *k == BlockKind::ListItem).len() >= 5);
}

#[test]
fn html_structure_title_and_no_boilerplate() {
    let (doc, _) = load_one("docling-testdata/html/example_01.html");
    assert_eq!(headings(&doc), ["Introduction", "Background"]);
    assert_eq!(texts(&doc, |k| *k == BlockKind::ListItem).len(), 6);

    let (policy, _) = load_one("debian/debian-policy/html/ch-scope.html");
    assert_blocks_sane(&policy);
    assert!(
        policy.metadata["title"].contains("About this manual"),
        "{:?}",
        policy.metadata
    );
    assert!(headings(&policy).iter().any(|h| h.contains("Scope")));
    assert!(!policy.text.contains("Quick search"), "sidebar dropped");
    assert!(!policy.text.contains('¶'), "permalinks dropped");
}

#[test]
fn xlsx_sheets_are_headed_tables() {
    let (doc, _) = load_one("docling-testdata/xlsx/xlsx_01.xlsx");
    assert_blocks_sane(&doc);
    let hs = headings(&doc);
    assert_eq!(&hs[..2], ["Sheet1", "Sheet2"]);
    assert_eq!(doc.metadata["sheets"].split(", ").next(), Some("Sheet1"));
    let rows = texts(&doc, |k| *k == BlockKind::Table);
    assert_eq!(&rows[..2], ["first | second | third", "1 | 5 | 9"]);
    let sheet2 = doc
        .blocks
        .iter()
        .find(|b| &doc.text[b.start..b.end] == "Sheet2")
        .unwrap();
    assert_eq!(sheet2.page, Some(2));
    // .xlsm goes through the same loader
    let (xlsm, _) = load_one("docling-testdata/xlsx/xlsx_02_sample_sales_data.xlsm");
    assert_eq!(xlsm.format, Format::Xlsx);
    assert!(!texts(&xlsm, |k| *k == BlockKind::Table).is_empty());
}

#[test]
fn pptx_slides_are_pages() {
    let (doc, _) = load_one("docling-testdata/pptx/powerpoint_sample.pptx");
    assert!(headings(&doc).contains(&"Second slide title"));
    assert!(
        texts(&doc, |k| *k == BlockKind::Table)
            .iter()
            .any(|r| r.contains("R1 | True | False"))
    );
    assert!(texts(&doc, |k| *k == BlockKind::ListItem).contains(&"With foo"));
    assert_eq!(doc.blocks.first().unwrap().page, Some(1));
    assert!(doc.blocks.iter().any(|b| b.page == Some(2)));
}

#[test]
fn odt_and_epub() {
    let (odt, _) = load_one("docling-testdata/odf/text_document_01.odt");
    let hs = headings(&odt);
    assert!(
        hs.contains(&"heading level 1.0") && hs.contains(&"Heading level 2: A"),
        "{hs:?}"
    );
    assert!(texts(&odt, |k| *k == BlockKind::ListItem).contains(&"bullet list 2.2.1"));

    let (epub, _) = load_one("debian/debian-policy/policy.epub");
    assert_blocks_sane(&epub);
    assert!(
        epub.metadata["title"].contains("Debian Policy"),
        "{:?}",
        epub.metadata
    );
    assert!(headings(&epub).len() > 50);
}

#[test]
fn whole_corpus_loads_without_errors() {
    let opts = LoadOptions::default();
    let mut n = 0;
    for outcome in ragtune_ingest::load_all(&[corpus("docling-testdata")], &opts) {
        let loaded = outcome.result.unwrap_or_else(|e| panic!("{e}"));
        for doc in &loaded.documents {
            assert_blocks_sane(doc);
        }
        n += 1;
    }
    assert!(n > 40, "{n} files");
}
