//! Token ids equal llama.cpp's for a committed list of strings, special tokens included.
//! Expected ids were produced once with llama-cpp-python 0.3.36:
//! `python3 bench/reference/llama_cpp_reference.py tokenize MODEL crates/model/tests/data/tokenizer_cases.json`

use crate::{QWEN, SMOLLM2, data, model_path};
use ragtune_model::llama::Tokenizer;
use serde_json::Value;

fn check(model: &str, expected_file: &str) {
    let tokenizer = Tokenizer::load(model_path(model)).expect("load tokenizer");
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(data(expected_file)).unwrap()).unwrap();
    assert!(expected.len() >= 20);
    for case in expected {
        let text = case["text"].as_str().unwrap();
        let ids = |key: &str| -> Vec<u32> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        };
        assert_eq!(
            tokenizer.encode(text, true),
            ids("special"),
            "{model}, special, {text:?}"
        );
        assert_eq!(
            tokenizer.encode(text, false),
            ids("plain"),
            "{model}, plain, {text:?}"
        );
        // Decoding gives the text back (plain encoding has no BOS to strip).
        assert_eq!(tokenizer.decode(&ids("plain")), text, "{model}, round trip");
    }
}

#[test]
fn smollm2_ids_equal_llama_cpp() {
    check(SMOLLM2, "tokenizer_smollm2.json");
}

#[test]
fn qwen_ids_equal_llama_cpp() {
    check(QWEN, "tokenizer_qwen2.5-coder-0.5b.json");
}
