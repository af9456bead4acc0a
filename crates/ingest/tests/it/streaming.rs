//! A 200 MB text file goes through in bounded segments with correct spans.

use crate::support::WordPunct;
use ragtune_ingest::{ChunkOptions, Chunker, LoadOptions, open};
use std::io::{Read, Seek, SeekFrom, Write};

#[test]
fn a_200_mb_text_file_streams_in_bounded_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let mut block = String::new();
    let mut i = 0;
    while block.len() < (1 << 20) - 600 {
        block.push_str(&format!(
            "Paragraph {i} says something about caching. It has two sentences, then ends.\n\n"
        ));
        i += 1;
    }
    block.push_str(&"x".repeat((1 << 20) - block.len() - 1));
    block.push('\n');
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for _ in 0..200 {
        out.write_all(block.as_bytes()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert_eq!(size, 200 << 20);

    let opts = LoadOptions {
        segment_bytes: 1 << 20,
        ..LoadOptions::default()
    };
    let chunk_opts = ChunkOptions {
        max_tokens: 200,
        overlap_tokens: 20,
        section_level: 3,
    };
    let mut chunker = Chunker::new(&WordPunct, chunk_opts);
    let mut file = std::fs::File::open(&path).unwrap();
    let (mut total, mut largest, mut segments, mut ordinal, mut last_start) = (0, 0, 0, 0u32, 0);
    for seg in open(&path, &opts).unwrap() {
        let seg = seg.unwrap();
        assert_eq!(seg.offset, total, "segments are contiguous");
        largest = largest.max(seg.document.text.len());
        total += seg.document.text.len();
        segments += 1;
        let chunks = chunker.push(&seg);
        for (k, c) in chunks.iter().enumerate() {
            assert_eq!(c.ordinal, ordinal);
            ordinal += 1;
            assert!(c.start >= last_start && c.tokens <= 200);
            last_start = c.start;
            // Spans are positions in the whole file (ASCII here, so bytes = text).
            if k == 0 || k + 1 == chunks.len() {
                let mut buf = vec![0; c.end - c.start];
                file.seek(SeekFrom::Start(c.start as u64)).unwrap();
                file.read_exact(&mut buf).unwrap();
                assert_eq!(buf, c.text.as_bytes());
            }
        }
    }
    assert_eq!(total, size);
    assert!(largest <= opts.segment_bytes, "largest segment {largest}");
    assert!(segments >= 200, "{segments} segments");
}
