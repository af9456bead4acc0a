//! A tiny random-weight BERT written into a temp folder: fast checks of shapes, pooling
//! modes, activations and the two forward passes against each other.

use crate::max_abs_diff;
use candle_core::{DType, Device, Tensor};
use ragtune_core::Embedder;
use ragtune_embed::{EmbedOptions, Kernels, Parallelism, Pooling, Precision, SentenceEmbedder};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

pub const HIDDEN: usize = 32;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const INTERMEDIATE: usize = 64;
const MAX_POSITIONS: usize = 16;

const WORDS: [&str; 12] = [
    "the", "cat", "sat", "on", "mat", "a", "dog", "ran", ".", "##s", "big", "red",
];

/// What to vary in a tiny model folder.
#[derive(Clone)]
pub struct Tiny {
    pub hidden_act: &'static str,
    pub pooling: &'static str,
    pub max_seq_length: usize,
    /// Prefix every tensor name with `bert.`.
    pub bert_prefix: bool,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny {
            hidden_act: "gelu",
            pooling: "pooling_mode_mean_tokens",
            max_seq_length: 12,
            bert_prefix: false,
        }
    }
}

pub fn vocab_size() -> usize {
    4 + WORDS.len()
}

/// Writes config.json, tokenizer.json, sentence_bert_config.json, modules.json,
/// 1_Pooling/config.json and model.safetensors (seeded weights) into `dir`.
pub fn write_tiny(dir: &Path, spec: &Tiny, weights: &HashMap<String, Tensor>) {
    let config = json!({
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": vocab_size(),
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "hidden_act": spec.hidden_act,
        "max_position_embeddings": MAX_POSITIONS,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute",
    });
    write(dir, "config.json", &config);
    write(dir, "tokenizer.json", &tokenizer());
    write(
        dir,
        "sentence_bert_config.json",
        &json!({"max_seq_length": spec.max_seq_length, "do_lower_case": false}),
    );
    write(
        dir,
        "modules.json",
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    write(
        dir,
        "1_Pooling/config.json",
        &json!({"word_embedding_dimension": HIDDEN, spec.pooling: true}),
    );
    let named: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| {
            let k = match spec.bert_prefix {
                true => format!("bert.{k}"),
                false => k.clone(),
            };
            (k, v.clone())
        })
        .collect();
    candle_core::safetensors::save(&named, dir.join("model.safetensors")).unwrap();
}

fn write(dir: &Path, name: &str, value: &serde_json::Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// A WordPiece tokenizer.json in the layout of BERT's, with a dozen words.
fn tokenizer() -> serde_json::Value {
    let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let mut vocab = serde_json::Map::new();
    for (i, t) in special.iter().chain(WORDS.iter()).enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    let added: Vec<_> = special
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": {"max_length": 4, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 20}, "direction": "Right", "pad_to_multiple_of": null,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// Random weights with BERT's tensor names (no prefix).
pub fn random_weights() -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut w = HashMap::new();
    let mut put = |name: String, dims: &[usize], scale: f64, offset: f64| {
        let t = (Tensor::randn(0f32, 1f32, dims, &dev).unwrap() * scale)
            .unwrap()
            .affine(1.0, offset)
            .unwrap();
        w.insert(name, t.to_dtype(DType::F32).unwrap());
    };
    put(
        "embeddings.word_embeddings.weight".into(),
        &[vocab_size(), HIDDEN],
        1.0,
        0.0,
    );
    put(
        "embeddings.position_embeddings.weight".into(),
        &[MAX_POSITIONS, HIDDEN],
        0.5,
        0.0,
    );
    put(
        "embeddings.token_type_embeddings.weight".into(),
        &[2, HIDDEN],
        0.5,
        0.0,
    );
    put("embeddings.LayerNorm.weight".into(), &[HIDDEN], 0.1, 1.0);
    put("embeddings.LayerNorm.bias".into(), &[HIDDEN], 0.1, 0.0);
    let lin_scale = 1.0 / (HIDDEN as f64).sqrt();
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for name in ["query", "key", "value"] {
            put(
                format!("{p}.attention.self.{name}.weight"),
                &[HIDDEN, HIDDEN],
                lin_scale,
                0.0,
            );
            put(
                format!("{p}.attention.self.{name}.bias"),
                &[HIDDEN],
                0.1,
                0.0,
            );
        }
        put(
            format!("{p}.attention.output.dense.weight"),
            &[HIDDEN, HIDDEN],
            lin_scale,
            0.0,
        );
        put(
            format!("{p}.attention.output.dense.bias"),
            &[HIDDEN],
            0.1,
            0.0,
        );
        put(
            format!("{p}.attention.output.LayerNorm.weight"),
            &[HIDDEN],
            0.1,
            1.0,
        );
        put(
            format!("{p}.attention.output.LayerNorm.bias"),
            &[HIDDEN],
            0.1,
            0.0,
        );
        put(
            format!("{p}.intermediate.dense.weight"),
            &[INTERMEDIATE, HIDDEN],
            lin_scale,
            0.0,
        );
        put(
            format!("{p}.intermediate.dense.bias"),
            &[INTERMEDIATE],
            0.1,
            0.0,
        );
        put(
            format!("{p}.output.dense.weight"),
            &[HIDDEN, INTERMEDIATE],
            lin_scale / 2.0,
            0.0,
        );
        put(format!("{p}.output.dense.bias"), &[HIDDEN], 0.1, 0.0);
        put(format!("{p}.output.LayerNorm.weight"), &[HIDDEN], 0.1, 1.0);
        put(format!("{p}.output.LayerNorm.bias"), &[HIDDEN], 0.1, 0.0);
    }
    w
}

pub fn tiny_folder(spec: &Tiny) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path(), spec, &random_weights());
    dir
}

fn load(dir: &Path, kernels: Kernels) -> SentenceEmbedder {
    let options = EmbedOptions {
        threads: 2,
        kernels,
        batch_tokens: 24,
        // The kernels against each other, both f32 (bf16 products: the minilm tests).
        precision: Precision::F32,
        ..EmbedOptions::default()
    };
    SentenceEmbedder::load_with(dir, &options).expect("load tiny BERT")
}

const TEXTS: [&str; 6] = [
    "the cat sat on the mat.",
    "a dog",
    "",
    "the big red dogs ran on a mat . the cat sat",
    "cats",
    "unknown words here",
];

#[test]
fn shapes_and_unit_norm() {
    let dir = tiny_folder(&Tiny::default());
    let model = load(dir.path(), Kernels::Fused);
    assert_eq!(model.dimension(), HIDDEN);
    let v = model.embed(&TEXTS).unwrap();
    assert_eq!(v.len(), TEXTS.len());
    for v in &v {
        assert_eq!(v.len(), HIDDEN);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    // Different texts, different vectors.
    assert!(max_abs_diff(&v[0], &v[1]) > 1e-3);
}

#[test]
fn fused_kernels_equal_candle_ops_for_every_pooling_and_activation() {
    let weights = random_weights();
    let poolings = [
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ];
    for (pooling, mode) in poolings {
        for hidden_act in ["gelu", "gelu_new", "relu"] {
            let dir = tempfile::tempdir().unwrap();
            let spec = Tiny {
                hidden_act,
                pooling,
                ..Tiny::default()
            };
            write_tiny(dir.path(), &spec, &weights);
            let fused = load(dir.path(), Kernels::Fused);
            assert_eq!(fused.pooling(), mode);
            let candle = load(dir.path(), Kernels::CandleOps);
            let a = fused.embed(&TEXTS).unwrap();
            let b = candle.embed(&TEXTS).unwrap();
            for ((x, y), text) in a.iter().zip(&b).zip(TEXTS) {
                assert!(
                    max_abs_diff(x, y) < 2e-5,
                    "{pooling} {hidden_act} {text:?}: {}",
                    max_abs_diff(x, y)
                );
            }
        }
    }
}

#[test]
fn mean_and_mean_sqrt_len_pooling_give_the_same_direction() {
    // Both are the token sum scaled by a positive number: equal after normalisation.
    let weights = random_weights();
    let embed = |pooling| {
        let dir = tempfile::tempdir().unwrap();
        let spec = Tiny {
            pooling,
            ..Tiny::default()
        };
        write_tiny(dir.path(), &spec, &weights);
        load(dir.path(), Kernels::Fused).embed(&TEXTS).unwrap()
    };
    let mean = embed("pooling_mode_mean_tokens");
    let sqrt = embed("pooling_mode_mean_sqrt_len_tokens");
    let cls = embed("pooling_mode_cls_token");
    for ((m, s), c) in mean.iter().zip(&sqrt).zip(&cls) {
        assert!(max_abs_diff(m, s) < 1e-6);
        assert!(
            max_abs_diff(m, c) > 1e-3,
            "cls pooling should differ from mean"
        );
    }
}

#[test]
fn bert_prefixed_checkpoints_load_the_same() {
    let weights = random_weights();
    let plain = tempfile::tempdir().unwrap();
    write_tiny(plain.path(), &Tiny::default(), &weights);
    let prefixed = tempfile::tempdir().unwrap();
    let spec = Tiny {
        bert_prefix: true,
        ..Tiny::default()
    };
    write_tiny(prefixed.path(), &spec, &weights);
    let a = load(plain.path(), Kernels::Fused).embed(&TEXTS).unwrap();
    let b = load(prefixed.path(), Kernels::Fused).embed(&TEXTS).unwrap();
    assert_eq!(a, b);
}

#[test]
fn max_seq_length_from_sentence_bert_config_cuts_texts() {
    let dir = tiny_folder(&Tiny {
        max_seq_length: 5,
        ..Tiny::default()
    });
    let model = load(dir.path(), Kernels::Fused);
    assert_eq!(model.max_seq_length(), 5);
    assert_eq!(model.max_content_tokens(), 3);
    // tokenizer.json asks for truncation at 4 and padding to 20: both are overridden.
    let ids = model.tokenize("the cat sat on the mat").unwrap();
    assert_eq!(ids, [2, 4, 5, 6, 3]);
    assert_eq!(model.tokenize("a dog").unwrap(), [2, 9, 10, 3]);
    let v = model
        .embed(&[
            "the cat sat",
            "the cat sat on the mat",
            "the cat sat dogs ran",
        ])
        .unwrap();
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-6);
    assert!(max_abs_diff(&v[0], &v[2]) < 1e-6);
}

#[test]
fn parallel_splits_and_batch_sizes_agree() {
    let dir = tiny_folder(&Tiny::default());
    let mut runs = Vec::new();
    for (parallelism, batch_tokens, sort_by_length) in [
        (Parallelism::Batches, 8, true),
        (Parallelism::WithinOps, 8, true),
        (Parallelism::Auto, 1000, false),
        (Parallelism::Batches, 1, false),
    ] {
        let options = EmbedOptions {
            threads: 2,
            parallelism,
            batch_tokens,
            sort_by_length,
            ..EmbedOptions::default()
        };
        let model = SentenceEmbedder::load_with(dir.path(), &options).unwrap();
        runs.push(model.embed(&TEXTS).unwrap());
    }
    for run in &runs[1..] {
        for (a, b) in run.iter().zip(&runs[0]) {
            assert!(max_abs_diff(a, b) < 1e-5);
        }
    }
}
