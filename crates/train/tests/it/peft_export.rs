//! PEFT export: tensor names, shapes, dtype, metadata and config keys as PEFT writes them
//! (tests/fixtures/peft_tiny_reference.json, made by make_peft_reference.py with PEFT itself).

use ragtune_train::model::random_base_weights;
use ragtune_train::{Llama, LoraConfig, TargetModule, gguf, peft};
use std::collections::BTreeMap;

fn saved(dir: &std::path::Path) -> (BTreeMap<String, Vec<usize>>, serde_json::Value) {
    let bytes = std::fs::read(dir.join(peft::WEIGHTS_FILE)).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut shapes = BTreeMap::new();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        shapes.insert(name, view.shape().to_vec());
    }
    let config =
        serde_json::from_str(&std::fs::read_to_string(dir.join(peft::CONFIG_FILE)).unwrap())
            .unwrap();
    (shapes, config)
}

#[test]
fn tiny_model_export_matches_what_peft_writes() {
    let reference = crate::fixture("peft_tiny_reference.json");
    let cfg = crate::tiny_config();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.05,
        targets: TargetModule::ALL.to_vec(),
    };
    let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1).unwrap(), lora, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    peft::save(&model, None, dir.path()).unwrap();
    let (shapes, config) = saved(dir.path());

    let expected: BTreeMap<String, Vec<usize>> = reference["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    assert_eq!(shapes, expected);

    // Every key we write is one PEFT writes, with PEFT's value (target_modules as a set).
    let peft_config = reference["config"].as_object().unwrap();
    for (key, value) in config.as_object().unwrap() {
        let want = peft_config
            .get(key)
            .unwrap_or_else(|| panic!("PEFT does not write {key}"));
        if key == "target_modules" {
            let set = |v: &serde_json::Value| {
                let mut s: Vec<String> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
                s.sort();
                s
            };
            assert_eq!(set(value), set(want));
        } else if let (Some(a), Some(b)) = (value.as_f64(), want.as_f64()) {
            assert!((a - b).abs() < 1e-9, "{key}: {a} vs {b}");
        } else {
            assert_eq!(value, want, "{key}");
        }
    }
    // No leftover temporary files from the atomic write.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn smollm2_q_v_export_has_peft_names_and_shapes() {
    let cfg = gguf::read_config(&crate::smollm2_gguf()).unwrap();
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.05,
        targets: vec![TargetModule::Q, TargetModule::V],
    };
    let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1).unwrap(), lora, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    peft::save(
        &model,
        Some("HuggingFaceTB/SmolLM2-135M-Instruct"),
        dir.path(),
    )
    .unwrap();
    let (shapes, config) = saved(dir.path());
    assert_eq!(shapes.len(), 30 * 2 * 2);
    let at = |k: &str| {
        shapes
            .get(k)
            .unwrap_or_else(|| panic!("missing {k}"))
            .clone()
    };
    assert_eq!(
        at("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"),
        vec![8, 576]
    );
    assert_eq!(
        at("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"),
        vec![576, 8]
    );
    assert_eq!(
        at("base_model.model.model.layers.29.self_attn.v_proj.lora_A.weight"),
        vec![8, 576]
    );
    assert_eq!(
        at("base_model.model.model.layers.29.self_attn.v_proj.lora_B.weight"),
        vec![192, 8]
    );
    assert_eq!(
        config["base_model_name_or_path"],
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    );
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    assert_eq!(config["r"], 8);
}
