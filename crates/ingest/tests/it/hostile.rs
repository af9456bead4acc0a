//! Files that must fail cleanly, or load with a warning: never a panic, never a stop.

use ragtune_ingest::{Error, LoadOptions, load, load_all};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

#[test]
fn empty_files_give_empty_documents_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "a.txt", "b.md", "c.pdf", "d.docx", "e.csv", "f.jsonl", "g.html", "h.xlsx",
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").unwrap();
        let loaded = load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.documents.len(), 1, "{name}");
        assert!(loaded.documents[0].text.is_empty(), "{name}");
        assert_eq!(loaded.warnings.len(), 1, "{name}: {:?}", loaded.warnings);
    }
}

#[test]
fn binary_junk_named_pdf_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0xde, 0xad]).unwrap();
    let err = load(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::FormatMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("report.pdf") && msg.contains("%PDF") && msg.contains("rename"),
        "{msg}"
    );
}

#[test]
fn junk_with_a_pdf_header_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.pdf");
    std::fs::write(
        &path,
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ngarbage\n%%EOF",
    )
    .unwrap();
    let err = load(&path, &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("broken.pdf"), "{err}");
}

/// A zip whose one member is 1 GiB of zeros (about 1 MB compressed).
fn zip_bomb(path: &Path, member: &str) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(member, opts).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn zip_bombs_are_refused_before_inflating() {
    let dir = tempfile::tempdir().unwrap();
    let docx = dir.path().join("bomb.docx");
    zip_bomb(&docx, "word/document.xml");
    let xlsx = dir.path().join("bomb.xlsx");
    std::fs::copy(&docx, &xlsx).unwrap();
    let size = std::fs::metadata(&docx).unwrap().len();
    assert!(size < 8 << 20, "{size} bytes");
    for path in [&docx, &xlsx] {
        let err = load(path, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, Error::ZipBomb { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("bomb.") && msg.contains("ZipLimits"), "{msg}");
    }
}

#[test]
fn many_small_members_hit_the_entry_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.pptx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..20 {
        zip.start_file(format!("f{i}"), SimpleFileOptions::default())
            .unwrap();
    }
    zip.finish().unwrap();
    let mut opts = LoadOptions::default();
    opts.zip.max_entries = 10;
    let err = load(&path, &opts).unwrap_err();
    assert!(err.to_string().contains("max_entries"), "{err}");
}

#[test]
fn invalid_utf8_is_replaced_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["latin1.txt", "latin1.md", "latin1.html", "latin1.csv"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"caf\xe9 cr\xe8me\n\nok\n").unwrap();
        let loaded = load(&path, &LoadOptions::default()).unwrap();
        let doc = &loaded.documents[0];
        assert!(
            doc.text.contains("caf\u{fffd} cr\u{fffd}me"),
            "{name}: {:?}",
            doc.text
        );
        assert!(
            loaded.warnings[0].message.contains("UTF-8"),
            "{name}: {:?}",
            loaded.warnings
        );
    }
}

#[test]
fn a_walk_reports_bad_files_and_loads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("sub/.hidden")).unwrap();
    std::fs::write(d.join("a.md"), "# A\n\ntext").unwrap();
    std::fs::write(d.join("b.pdf"), "not a pdf at all").unwrap();
    std::fs::write(d.join("sub/c.txt"), "hello").unwrap();
    std::fs::write(d.join("sub/d.docx"), b"PK\x03\x04 truncated").unwrap();
    std::fs::write(d.join("sub/e.png"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(d.join("sub/.hidden/f.txt"), "secret").unwrap();
    let outcomes: Vec<_> = load_all(&[d], &LoadOptions::default()).collect();
    let names: Vec<String> = outcomes
        .iter()
        .map(|o| o.path.strip_prefix(d).unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["a.md", "b.pdf", "sub/c.txt", "sub/d.docx"]);
    let ok: Vec<bool> = outcomes.iter().map(|o| o.result.is_ok()).collect();
    assert_eq!(ok, [true, false, true, false]);
    for o in outcomes.iter().filter_map(|o| o.result.as_ref().err()) {
        assert!(o.to_string().contains(d.to_str().unwrap()), "{o}");
    }
    // An explicitly named file of an unsupported type is an error, not a silent skip.
    let err = ragtune_ingest::walk(&[d.join("sub/e.png")])
        .remove(0)
        .unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. }) && err.to_string().contains("docx"),
        "{err}"
    );
}

/// Regression: a DOCX (or ODT) nested 100,000 elements deep overflowed the stack of the
/// recursive walkers and aborted the process; it is now a clear error for that file.
#[test]
fn deeply_nested_office_xml_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000;
    let body = format!(
        "{}<w:p><w:r><w:t>deep</w:t></w:r></w:p>{}",
        "<w:sdt><w:sdtContent>".repeat(n),
        "</w:sdtContent></w:sdt>".repeat(n)
    );
    let xml = format!(
        "<?xml version=\"1.0\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let path = dir.path().join("deep.docx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("word/document.xml", opts).unwrap();
    zip.write_all(xml.as_bytes()).unwrap();
    zip.finish().unwrap();
    let err = load(&path, &LoadOptions::default()).expect_err("too deep");
    assert!(err.to_string().contains("more than 1024 deep"), "{err}");
}

/// Found by `scripts/fuzz` (pdf): a page that is its own `/Parent` and has no resources of its
/// own sent pdf-extract up the parent chain forever (a hang in release builds, a stack overflow
/// in debug ones), taking the whole ingest with it. The page is now left out with a warning.
#[test]
fn a_page_that_is_its_own_parent_is_left_out_not_followed_forever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.pdf");
    std::fs::write(
        &path,
        include_bytes!("../../../../fuzz/corpus/pdf/page-is-its-own-parent.pdf"),
    )
    .unwrap();
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("could not be extracted")),
        "{warnings:?}"
    );
}

/// A PDF of `objects` (numbered from 1; object 1 must be the catalogue), with its xref table.
fn pdf_of(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", i + 1).into_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").into_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .into_bytes(),
    );
    out
}

fn stream(dict: &str, content: &str) -> String {
    format!(
        "<< {dict} /Length {} >>\nstream\n{content}\nendstream",
        content.len()
    )
}

/// Two pages: the first writes `first` and draws form 6, the second writes "Second page
/// text."; `forms` are objects 6, 7, ... (each a Form XObject that may draw others).
fn pdf_with_forms(forms: &[String]) -> Vec<u8> {
    let font = "/Font << /F1 5 0 R >>";
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".to_owned(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {font} /XObject << /X6 6 0 R >> >> /Contents {} 0 R >>",
            6 + forms.len()
        ),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {font} >> /Contents {} 0 R >>",
            7 + forms.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    objects.extend(forms.iter().cloned());
    objects.push(stream(
        "",
        "BT /F1 12 Tf 72 720 Td (First page text.) Tj ET /X6 Do",
    ));
    objects.push(stream(
        "",
        "BT /F1 12 Tf 72 720 Td (Second page text.) Tj ET",
    ));
    pdf_of(&objects)
}

/// A Form XObject writing `text` and drawing each of `draws` (object numbers, with
/// repeats) in order.
fn form(text: &str, draws: &[usize]) -> String {
    let names: String = draws
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|d| format!("/X{d} {d} 0 R "))
        .collect();
    let calls: String = draws.iter().map(|d| format!(" /X{d} Do")).collect();
    stream(
        &format!(
            "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> /XObject << {names}>> >>"
        ),
        &format!("BT /F1 12 Tf 72 700 Td ({text}) Tj ET{calls}"),
    )
}

fn load_pdf(bytes: &[u8]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forms.pdf");
    std::fs::write(&path, bytes).unwrap();
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    let text = loaded.documents.iter().map(|d| d.text.clone()).collect();
    (
        text,
        loaded.warnings.iter().map(|w| w.to_string()).collect(),
    )
}

/// Forms drawing forms, as real files have them, are read.
#[test]
fn nested_form_xobjects_are_read() {
    let (text, warnings) = load_pdf(&pdf_with_forms(&[
        form("Inside the outer form.", &[7, 7]),
        form("Inside the inner form.", &[]),
    ]));
    for part in [
        "First page text.",
        "Inside the outer form.",
        "Inside the inner form.",
        "Second page text.",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// Found by reading pdf-extract: it draws an XObject by recursing into it, so a form that draws
/// itself (here through another) overflowed the stack and aborted the whole ingest; a chain of
/// forms nested too deep, or drawing each other exponentially often, hung it. Such a page is
/// now left out with a warning, and the rest of the file is read.
#[test]
fn form_xobjects_that_loop_nest_too_deep_or_explode_leave_their_page_out() {
    let looping = vec![form("a", &[7]), form("b", &[6])];
    let deep: Vec<String> = (6..6 + 40).map(|n| form("deep", &[n + 1])).collect();
    let deep = [deep, vec![form("bottom", &[])]].concat();
    let exploding: Vec<String> = (6..6 + 12)
        .map(|n| form("boom", &[n + 1; 10]))
        .chain([form("leaf", &[])])
        .collect();
    for (what, forms) in [("loop", looping), ("deep", deep), ("exploding", exploding)] {
        let (text, warnings) = load_pdf(&pdf_with_forms(&forms));
        assert!(text.contains("Second page text."), "{what}: {text}");
        assert!(!text.contains("First page text."), "{what}: {text}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("page(s) [1] could not be extracted")),
            "{what}: {warnings:?}"
        );
    }
}
