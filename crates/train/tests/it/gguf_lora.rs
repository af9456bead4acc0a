//! GGUF LoRA export, PEFT read-back and merge on the real SmolLM2 GGUF (the layout checks
//! against a tiny config are unit tests in src/gguf_lora.rs and src/merge.rs).

use candle_core::quantized::{GgmlDType, gguf_file};
use candle_core::{DType, Device, Tensor};
use ragtune_train::merge::{MergedType, merge};
use ragtune_train::model::random_base_weights;
use ragtune_train::{Llama, LoraConfig, SplitMix64, TargetModule, gguf, gguf_lora, peft};
use std::collections::HashMap;

fn read(path: &std::path::Path) -> (std::fs::File, gguf_file::Content) {
    let mut f = std::fs::File::open(path).unwrap();
    let c = gguf_file::Content::read(&mut f).unwrap();
    (f, c)
}

#[test]
fn peft_directory_reads_back_as_written() {
    let cfg = crate::tiny_config();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.05,
        targets: vec![TargetModule::Down, TargetModule::Q, TargetModule::V],
    };
    let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1).unwrap(), lora, 3).unwrap();
    let mut rng = SplitMix64::new(4);
    for (_, _, l) in model.adapters() {
        let n = l.b.elem_count();
        let b = Tensor::from_vec(rng.uniform(n, -1., 1.), l.b.shape(), &Device::Cpu).unwrap();
        l.b.set(&b).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    peft::save(&model, None, dir.path()).unwrap();
    let (back, tensors) = peft::read(dir.path()).unwrap();
    // Targets come back in TargetModule order (PEFT stores them sorted by name).
    let mut expect = model.lora_config().clone();
    expect.targets.sort();
    assert_eq!(back, expect);
    let written = peft::adapter_tensors(&model).unwrap();
    assert_eq!(tensors.len(), written.len());
    for (name, t) in &written {
        let diff = (t - &tensors[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }

    let config = dir.path().join(peft::CONFIG_FILE);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"use_rslora\": false", "\"use_rslora\": true"),
    )
    .unwrap();
    let err = peft::read(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("use_rslora") && err.contains("adapter_config.json"),
        "{err}"
    );
}

/// PEFT tensors of the right shapes for a config: A all 0.01, B zero (a no-op adapter).
fn zero_adapter(cfg: &ragtune_train::LlamaConfig, lora: &LoraConfig) -> HashMap<String, Tensor> {
    let (h, kv, ff) = (cfg.hidden_size, cfg.kv_dim(), cfg.intermediate_size);
    let mut out = HashMap::new();
    for layer in 0..cfg.num_layers {
        for &t in &lora.targets {
            let (o, i) = match t {
                TargetModule::Q | TargetModule::O => (h, h),
                TargetModule::K | TargetModule::V => (kv, h),
                TargetModule::Gate | TargetModule::Up => (ff, h),
                TargetModule::Down => (h, ff),
            };
            let a = Tensor::full(0.01f32, (lora.rank, i), &Device::Cpu).unwrap();
            let b = Tensor::zeros((o, lora.rank), DType::F32, &Device::Cpu).unwrap();
            out.insert(peft::tensor_name(layer, t, false), a);
            out.insert(peft::tensor_name(layer, t, true), b);
        }
    }
    out
}

#[test]
fn smollm2_gguf_lora_fits_the_base_tensors_as_llama_cpp_checks_them() {
    let base = crate::smollm2_gguf();
    let cfg = gguf::read_config(&base).unwrap();
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: TargetModule::ALL.to_vec(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adapter.gguf");
    gguf_lora::write(&path, &zero_adapter(&cfg, &lora), &lora, &cfg, None).unwrap();

    let (_, c) = read(&path);
    assert_eq!(c.tensor_infos.len(), 30 * 7 * 2);
    assert_eq!(
        c.metadata["general.architecture"].to_string().unwrap(),
        "llama"
    );
    assert_eq!(c.metadata["general.type"].to_string().unwrap(), "adapter");
    assert_eq!(c.metadata["adapter.type"].to_string().unwrap(), "lora");
    assert_eq!(c.metadata["adapter.lora.alpha"].to_f32().unwrap(), 16.0);
    assert_eq!(
        c.tensor_infos["blk.0.attn_q.weight.lora_a"].shape.dims(),
        &[8, 576]
    );
    assert_eq!(
        c.tensor_infos["blk.29.attn_k.weight.lora_b"].shape.dims(),
        &[192, 8]
    );
    assert_eq!(
        c.tensor_infos["blk.7.ffn_down.weight.lora_a"].shape.dims(),
        &[8, 1536]
    );
    // llama-adapter.cpp (ne = reversed dims): base ne[0] == a ne[0], base ne[1] == b ne[1],
    // a ne[1] == b ne[0]; i.e. here base [out, in], a [r, in], b [out, r].
    let (_, bc) = read(&base);
    for (name, info) in &c.tensor_infos {
        assert_eq!(info.ggml_dtype, GgmlDType::F32, "{name}");
        let base_name = name.trim_end_matches(".lora_a").trim_end_matches(".lora_b");
        let w = bc.tensor_infos[base_name].shape.dims();
        let d = info.shape.dims();
        if name.ends_with(".lora_a") {
            assert_eq!(d, &[8, w[1]], "{name}");
        } else {
            assert_eq!(d, &[w[0], 8], "{name}");
        }
    }
}

#[test]
fn smollm2_zero_adapter_merge_copies_every_tensor_and_key() {
    let base = crate::smollm2_gguf();
    let cfg = gguf::read_config(&base).unwrap();
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: vec![TargetModule::Q, TargetModule::K, TargetModule::Down],
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.gguf");
    let n = merge(
        &base,
        &zero_adapter(&cfg, &lora),
        &lora,
        &out,
        MergedType::F32,
    )
    .unwrap();
    assert_eq!(n, 30 * 3);

    let (mut fb, cb) = read(&base);
    let (mut fm, cm) = read(&out);
    assert_eq!(cb.tensor_infos.len(), cm.tensor_infos.len());
    let dev = Device::Cpu;
    for (name, info) in &cb.tensor_infos {
        let b = cb.tensor(&mut fb, name, &dev).unwrap();
        let m = cm.tensor(&mut fm, name, &dev).unwrap();
        let merged = ["attn_q.weight", "attn_k.weight", "ffn_down.weight"]
            .iter()
            .any(|s| name.ends_with(s));
        if merged {
            assert_eq!(m.dtype(), GgmlDType::F32, "{name}");
            let (b, m) = (b.dequantize(&dev).unwrap(), m.dequantize(&dev).unwrap());
            let diff = (b - m).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
        } else {
            assert_eq!(m.dtype(), info.ggml_dtype, "{name}");
            assert_eq!(b.data().unwrap(), m.data().unwrap(), "{name}");
        }
    }
    for (k, v) in &cb.metadata {
        if k != "general.file_type" && k != "general.alignment" {
            assert_eq!(format!("{v:?}"), format!("{:?}", cm.metadata[k]), "{k}");
        }
    }
    // The merged file still loads as a llama model.
    assert_eq!(gguf::read_config(&out).unwrap(), cfg);
}
