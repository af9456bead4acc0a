//! all-MiniLM-L6-v2 against sentence-transformers, and the embedder's contracts.

use crate::{cosine, max_abs_diff, minilm, minilm_with, reference};
use ragtune_core::{Embedder, TokenCounter};
use ragtune_embed::{EmbedOptions, Kernels, Parallelism, Pooling, Precision};

/// Cosine with sentence-transformers' vector of every reference case.
fn cosines_with_reference(options: EmbedOptions) -> Vec<f32> {
    let model = minilm_with(options);
    let reference = reference();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let vectors = model.embed(&texts).expect("embed");
    reference
        .cases
        .iter()
        .zip(&vectors)
        .map(|(case, got)| cosine(got, &case.vector))
        .collect()
}

fn check_against_reference(options: EmbedOptions) {
    let model = minilm_with(options);
    let reference = reference();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let vectors = model.embed(&texts).expect("embed");
    assert_eq!(vectors.len(), texts.len());
    for (case, got) in reference.cases.iter().zip(&vectors) {
        let cos = cosine(got, &case.vector);
        assert!(
            cos >= 0.999,
            "{:?}: cosine {cos} with sentence-transformers",
            case.text
        );
        // In practice the two agree to float rounding, far tighter than the contract.
        assert!(
            max_abs_diff(got, &case.vector) < 1e-4,
            "{:?}: max abs diff {}",
            case.text,
            max_abs_diff(got, &case.vector)
        );
    }
}

#[test]
fn fused_kernels_match_sentence_transformers() {
    check_against_reference(EmbedOptions {
        precision: Precision::F32,
        ..EmbedOptions::default()
    });
}

/// The default: bf16 products on AMX where the CPU has it (f32 elsewhere, where this is the
/// test above again).
#[test]
fn bf16_products_stay_within_cosine_0_9999_of_sentence_transformers() {
    let cosines = cosines_with_reference(EmbedOptions::default());
    let worst = cosines.iter().copied().fold(1.0f32, f32::min);
    eprintln!("worst cosine {worst}");
    assert!(
        worst >= 0.9999,
        "worst cosine {worst} over {} cases",
        cosines.len()
    );
}

#[test]
fn candle_ops_match_sentence_transformers() {
    check_against_reference(EmbedOptions {
        kernels: Kernels::CandleOps,
        precision: Precision::F32,
        ..EmbedOptions::default()
    });
}

#[test]
fn every_parallel_split_gives_the_same_vectors() {
    let reference = reference();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let runs: Vec<Vec<Vec<f32>>> = [Parallelism::Batches, Parallelism::WithinOps]
        .into_iter()
        .map(|parallelism| {
            let model = minilm_with(EmbedOptions {
                parallelism,
                batch_tokens: 64, // several batches
                ..EmbedOptions::default()
            });
            model.embed(&texts).expect("embed")
        })
        .collect();
    for (a, b) in runs[0].iter().zip(&runs[1]) {
        assert!(max_abs_diff(a, b) < 1e-5);
    }
}

#[test]
fn model_facts() {
    let model = minilm();
    let reference = reference();
    assert_eq!(model.name(), reference.model);
    assert_eq!(model.dimension(), 384);
    assert_eq!(model.max_seq_length(), reference.max_seq_length);
    assert_eq!(model.max_content_tokens(), 254);
    assert_eq!(model.pooling(), Pooling::Mean);
    assert_eq!(model.threads(), 2);
}

#[test]
fn vectors_have_unit_norm() {
    let model = minilm();
    let texts = [
        "short",
        "",
        "A somewhat longer sentence about unit norms and vectors.",
    ];
    for v in model.embed(&texts).expect("embed") {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn batch_order_is_restored() {
    // Lengths in no particular order, so sorting by length reorders them.
    let texts = [
        "Medium length sentence number one, about rivers.",
        "Hi.",
        "A much longer sentence that goes on about mountains, valleys, rivers and the sea, to be the longest of them all.",
        "",
        "Two words",
        "Medium length sentence number two, about forests.",
    ];
    let model = minilm_with(EmbedOptions {
        batch_tokens: 40, // several batches
        ..EmbedOptions::default()
    });
    let together = model.embed(&texts).expect("embed");
    for (text, got) in texts.iter().zip(&together) {
        let alone = model.embed_query(text).expect("embed alone");
        assert!(
            max_abs_diff(got, &alone) < 1e-5,
            "{text:?} differs in a batch"
        );
    }
}

#[test]
fn long_texts_are_cut_at_256_tokens() {
    let model = minilm();
    let reference = reference();
    let long = reference
        .cases
        .iter()
        .find(|c| c.count > 300)
        .expect("a long case");
    let ids = model.tokenize(&long.text).expect("tokenize");
    assert_eq!(ids.len(), 256);
    assert_eq!(ids, long.ids);
    assert_eq!(*ids.last().unwrap(), 102, "[SEP] closes a cut text");
    // Whatever comes after the 256th token does not change the vector.
    let longer = format!(
        "{} and then a great deal more text that the model never reads.",
        long.text
    );
    let v = model.embed(&[&long.text, &longer]).expect("embed");
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-6);
}

#[test]
fn empty_string_embeds_like_sentence_transformers() {
    let model = minilm();
    let reference = reference();
    let case = reference.cases.iter().find(|c| c.text.is_empty()).unwrap();
    assert_eq!(model.tokenize("").unwrap(), [101, 102]);
    assert_eq!(model.count_tokens(""), 0);
    let v = model.embed_query("").expect("embed");
    assert!(cosine(&v, &case.vector) >= 0.999);
    assert!(model.embed(&[]).expect("no texts").is_empty());
}

#[test]
fn very_long_input_is_embedded() {
    let model = minilm();
    let huge = "retrieval augmented generation ".repeat(20_000); // 600k chars
    let prefix = "retrieval augmented generation ".repeat(300);
    let per_copy = model.count_tokens("retrieval augmented generation");
    assert_eq!(model.count_tokens(&huge), 20_000 * per_copy);
    let v = model.embed(&[&huge, &prefix]).expect("embed");
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-6);
}

#[test]
fn token_counts_and_ids_equal_the_hf_tokenizer() {
    let model = minilm();
    for case in reference().cases {
        assert_eq!(
            model.count_tokens(&case.text),
            case.count,
            "{:?}",
            case.text
        );
        assert_eq!(
            model.tokenize(&case.text).unwrap(),
            case.ids,
            "{:?}",
            case.text
        );
    }
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let model = minilm();
    let v = model
        .embed(&[
            "How do I bake bread at home?",
            "A simple recipe for homemade bread.",
            "The stock market fell sharply on Monday.",
        ])
        .expect("embed");
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
}
