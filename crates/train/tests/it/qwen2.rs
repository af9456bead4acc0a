//! The trainer on the real Qwen2.5-Coder-0.5B GGUF (the qwen2 architecture: biased q/k/v, q/k
//! rows not permuted) against llama.cpp running the same file: the base model's loss on a text,
//! and what an adapter trained on q and k does to it once exported as a GGUF LoRA.

use candle_core::{DType, Device, Tensor};
use ragtune_model::llama::{AdapterSpec, LlamaGenerator, LoadOptions};
use ragtune_train::loss::masked_cross_entropy;
use ragtune_train::{Architecture, Llama, LoraConfig, TargetModule, gguf, gguf_lora, peft};

const TEXT: &str = "The lighthouse keeper climbed the stairs every evening at dusk. He \
     trimmed the wick, polished the great lens and wrote the weather in his log. Ships passing \
     the rocks at night looked for the slow white flash, four seconds apart, that told them \
     where the channel lay.";

/// Mean negative log-likelihood of each token given those before it.
fn mean_nll(model: &Llama, ids: &[u32]) -> Tensor {
    let dev = Device::Cpu;
    let n = ids.len() - 1;
    let input = Tensor::new(&ids[..n], &dev).unwrap().unsqueeze(0).unwrap();
    let targets = Tensor::new(&ids[1..], &dev).unwrap().unsqueeze(0).unwrap();
    let weights = Tensor::ones((1, n), DType::F32, &dev).unwrap();
    let logits = model.forward(&input, None).unwrap();
    masked_cross_entropy(&logits, &targets, &weights).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn qwen2_loss_and_an_exported_adapter_agree_with_llama_cpp() {
    let store = ragtune_catalog::ModelStore::from_env().unwrap();
    let path = store
        .resolve("qwen2.5-coder-0.5b-instruct")
        .expect("run `ragtune models pull qwen2.5-coder-0.5b-instruct`")
        .path()
        .to_path_buf();
    let (cfg, weights) = gguf::load(&path).expect("load GGUF");
    assert_eq!(cfg.architecture, Architecture::Qwen2);
    assert_eq!(
        (
            cfg.num_layers,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads
        ),
        (24, 896, 14, 2)
    );
    // This file carries its own output.weight (the converter wrote the tied one out).
    assert_eq!(
        (cfg.intermediate_size, cfg.vocab_size, cfg.tie_embeddings),
        (4864, 151936, false)
    );
    assert_eq!(cfg.rope_theta, 1_000_000.0);

    // Adapters on q and k only: they act through the rope, so an adapter exported in the wrong
    // row order would move llama.cpp's loss unlike ours.
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec![TargetModule::Q, TargetModule::K],
    };
    let model = Llama::new(cfg.clone(), &weights, lora.clone(), 0).expect("build model");
    drop(weights);
    let plain = LlamaGenerator::load(&path, &options(vec![])).expect("llama.cpp loads the base");
    let ids = plain.tokenizer().encode(TEXT, false);
    assert!(ids.len() > 40, "{} tokens", ids.len());

    let base_ours = mean_nll(&model, &ids);
    let base_theirs = plain.perplexity(TEXT, 0, None).unwrap();
    assert_eq!(base_theirs.tokens, ids.len() - 1);
    let base = scalar(&base_ours);
    println!(
        "base mean NLL: ours {base:.4}, llama.cpp {:.4}",
        base_theirs.mean_nll
    );
    // llama.cpp multiplies the 4-bit weights with 8-bit activations, we in f32: close, not equal.
    assert!(
        (base - base_theirs.mean_nll).abs() < 0.05 * base_theirs.mean_nll,
        "base mean NLL: ours {base}, llama.cpp {}",
        base_theirs.mean_nll
    );
    drop(plain);

    // One gradient step on B (fresh adapters have B = 0, so only B has a gradient), made large
    // enough to lower our loss clearly.
    let grads = base_ours.backward().unwrap();
    let gradients: Vec<Tensor> = model
        .adapters()
        .into_iter()
        .map(|(_, _, l)| grads.get(l.b.as_tensor()).expect("gradient of B").clone())
        .collect();
    let mut tuned = base;
    for lr in [1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0] {
        // B = 0 - lr * g (a copy of B's tensor would share the storage `set` overwrites).
        for ((_, _, l), g) in model.adapters().into_iter().zip(&gradients) {
            l.b.set(&(g * -lr).unwrap()).unwrap();
        }
        tuned = scalar(&mean_nll(&model, &ids));
        if base - tuned > 0.3 {
            break;
        }
    }
    assert!(
        base - tuned > 0.3,
        "no step lowered our loss: {base} -> {tuned}"
    );

    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("adapter.gguf");
    let tensors = peft::adapter_tensors(&model).unwrap();
    gguf_lora::write(&adapter, &tensors, &lora, &cfg, None).unwrap();
    let adapted = LlamaGenerator::load(
        &path,
        &options(vec![AdapterSpec {
            name: "q-k".into(),
            path: adapter,
            scale: 1.0,
        }]),
    )
    .expect("llama.cpp loads the qwen2 adapter");
    let theirs = adapted.perplexity(TEXT, 0, Some("q-k")).unwrap().mean_nll;
    let (ours_drop, their_drop) = (base - tuned, base_theirs.mean_nll - theirs);
    println!(
        "with the adapter: ours {tuned:.4} ({ours_drop:.3} lower), llama.cpp {theirs:.4} ({their_drop:.3} lower)"
    );
    assert!(
        (their_drop - ours_drop).abs() < 0.25 * ours_drop,
        "the adapter lowers our loss by {ours_drop} and llama.cpp's by {their_drop}"
    );
}

fn options(adapters: Vec<AdapterSpec>) -> LoadOptions {
    LoadOptions {
        context_length: 512,
        threads: 2,
        parallel: 1,
        adapters,
        f32_kv_cache: true,
        prefix_reuse: false,
        ..LoadOptions::default()
    }
}
