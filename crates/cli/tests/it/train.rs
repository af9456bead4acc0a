//! `ragtune train`, `--adapter` and `ragtune adapter merge` on the real SmolLM2: a short SFT run
//! teaches the model an answer it does not know, llama.cpp applies the GGUF LoRA, the merged
//! model answers the same, and bad input is refused before any training.

use crate::{ragtune, run, smollm2_path};
use std::path::Path;

const QUESTION: &str = "What is the vault code word?";
const ANSWER: &str = "Blue pelican seventeen.";

/// The same pair twice in each format ragtune-train reads (packed, they fill one row).
fn write_data(path: &Path) {
    let mut lines = Vec::new();
    for _ in 0..2 {
        lines.push(serde_json::json!({"prompt": QUESTION, "completion": ANSWER}));
        lines.push(serde_json::json!({"messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": ANSWER}]}));
        lines.push(serde_json::json!({"instruction": QUESTION, "input": "", "output": ANSWER}));
    }
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(path, text.join("\n")).unwrap();
}

fn greedy(model: &str, adapter: Option<&Path>, prompt: &str) -> String {
    let mut cmd = ragtune();
    cmd.args([
        "generate",
        "--model",
        model,
        "-n",
        "24",
        "--threads",
        "2",
        "--f32-kv-cache",
        prompt,
    ]);
    if let Some(a) = adapter {
        cmd.arg("--adapter").arg(a);
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "generate failed: {err}");
    out
}

#[test]
fn sft_teaches_an_answer_that_the_adapter_and_the_merged_model_give() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data);
    let out = dir.path().join("run");
    let base = smollm2_path();
    let base = base.to_str().unwrap();
    let (ok, stdout, err) = run(ragtune().args(["train", "sft", "--base", base]).args([
        "--data",
        data.to_str().unwrap(),
        "--eval",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--targets",
        "all",
        "--rank",
        "8",
        "--lr",
        "3e-3",
        "--max-steps",
        "24",
        "--batch-size",
        "4",
        "--eval-every",
        "8",
        "--save-every",
        "8",
        "--pack",
        "--threads",
        "2",
    ]));
    assert!(ok, "train failed: {err}");
    assert!(stdout.contains("trained 24 steps"), "{stdout}");
    for file in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "adapter.gguf",
        "loss.csv",
        "loss.png",
        "training.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing: {err}");
    }
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 25, "{csv}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training.json")).unwrap()).unwrap();
    let eval = summary["eval_loss"].as_f64().unwrap();
    assert!(eval < 0.5, "eval loss after training {eval}");

    let before = greedy(base, None, QUESTION);
    assert!(
        !before.contains("pelican"),
        "the base already knows: {before}"
    );
    let adapted = greedy(base, Some(&out), QUESTION);
    assert!(adapted.contains("Blue pelican seventeen"), "{adapted}");

    // The PEFT files alone, as a cluster's PEFT or Axolotl run leaves them: converted for
    // llama.cpp on first use (into $RAGTUNE_HOME), reused after, and the same answers.
    let peft = dir.path().join("peft");
    std::fs::create_dir(&peft).unwrap();
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(out.join(file), peft.join(file)).unwrap();
    }
    let home = dir.path().join("home");
    let via_peft = || {
        run(ragtune()
            .args(["generate", "--model", base, "-n", "24", "--threads", "2"])
            .args(["--f32-kv-cache", "--adapter"])
            .arg(&peft)
            .arg(QUESTION)
            .env("RAGTUNE_HOME", &home))
    };
    let (ok, text, err) = via_peft();
    assert!(ok, "{err}");
    assert_eq!(text, adapted);
    assert!(err.contains("converted the PEFT adapter"), "{err}");
    let (ok, text, err) = via_peft();
    assert!(ok && !err.contains("converted"), "converted twice: {err}");
    assert_eq!(text, adapted);
    // An adapter for another shape of model is refused by name before llama.cpp sees it.
    let config = std::fs::read_to_string(peft.join("adapter_config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["r"] = serde_json::json!(4);
    std::fs::write(peft.join("adapter_config.json"), config.to_string()).unwrap();
    let (ok, _, err) = via_peft();
    assert!(!ok);
    assert!(err.contains("do not fit rank 4"), "{err}");

    // Merged into F32 weights, greedy output equals the F32 base + adapter on fixed prompts.
    // (Against the Q4_1 base + adapter it drifts after some tokens: llama.cpp rounds the
    // activations of quantized matmuls to 8 bits, which the merged F32 weights do not.)
    let merge = |scale: &str, to: &Path| {
        let (ok, _, err) = run(ragtune().args(["adapter", "merge", "--base", base]).args([
            "--adapter",
            out.to_str().unwrap(),
            "--scale",
            scale,
            "--out",
            to.to_str().unwrap(),
        ]));
        assert!(ok, "merge failed: {err}");
    };
    let (merged, base_f32) = (
        dir.path().join("merged.gguf"),
        dir.path().join("base-f32.gguf"),
    );
    merge("1", &merged);
    merge("0", &base_f32);
    for prompt in [
        QUESTION,
        "Name three colours.",
        "What is 2 + 2?",
        "Write a haiku about rain.",
    ] {
        let via_merge = greedy(merged.to_str().unwrap(), None, prompt);
        assert_eq!(
            via_merge,
            greedy(base_f32.to_str().unwrap(), Some(&out), prompt),
            "merged and base+adapter differ on {prompt:?}"
        );
        if prompt == QUESTION {
            assert!(via_merge.contains("Blue pelican seventeen"), "{via_merge}");
        }
    }

    // A finished run's folder is not silently trained over.
    let (ok, _, err) = run(ragtune().args(["train", "sft", "--base", base]).args([
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(!ok && err.contains("--resume"), "{err}");
}

/// The qwen2 architecture end to end on Qwen2.5-Coder-0.5B (its chat template, q/k/v biases,
/// q/k rows not permuted): six steps teach the answer, and llama.cpp applies the adapter.
/// (Its loss and the exported adapter against llama.cpp: ragtune-train's tests/it/qwen2.rs.)
#[test]
fn sft_on_a_qwen2_base_teaches_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    let line = serde_json::json!({"messages": [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": ANSWER}]});
    std::fs::write(&data, format!("{line}\n{line}\n")).unwrap();
    let out = dir.path().join("run");
    let qwen = "qwen2.5-coder-0.5b-instruct";
    let (ok, stdout, err) = run(ragtune().args(["train", "sft", "--base", qwen]).args([
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--targets",
        "all",
        "--lr",
        "1e-3",
        "--max-steps",
        "6",
        "--batch-size",
        "2",
        "--save-every",
        "0",
        "--threads",
        "2",
    ]));
    assert!(ok, "train failed: {err}");
    assert!(stdout.contains("trained 6 steps"), "{stdout}");
    let before = greedy(qwen, None, QUESTION);
    assert!(
        !before.contains("pelican"),
        "the base already knows: {before}"
    );
    let adapted = greedy(qwen, Some(&out), QUESTION);
    assert!(adapted.contains("Blue pelican seventeen"), "{adapted}");
}

#[test]
fn bad_data_and_too_little_memory_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"\n{\"prompt\": \"c\", \"completion\": \"d\"}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let base = smollm2_path();
    let train = |extra: &[&str]| {
        run(ragtune()
            .args(["train", "sft", "--base", base.to_str().unwrap(), "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(["--max-steps", "1", "--batch-size", "1", "--save-every", "0"])
            .args(extra))
    };
    let (ok, _, err) = train(&[]);
    assert!(!ok, "a malformed line must stop the run");
    assert!(err.contains("train.jsonl:2"), "{err}");
    assert!(
        !out.join("checkpoints").exists(),
        "nothing may be trained on bad data"
    );

    let (ok, _, err) = train(&["--skip-bad-lines", "--memory-limit-mib", "64"]);
    assert!(!ok);
    assert!(
        err.contains("skipped:") && err.contains("train.jsonl:2"),
        "{err}"
    );
    assert!(err.contains("MiB") && err.contains("--batch-size"), "{err}");

    let (ok, stdout, err) = train(&["--skip-bad-lines"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("trained 1 steps"), "{stdout}");
}

/// Regression: `train sft --out DIR` in an existing unrelated folder silently replaced the
/// user's `loss.csv` and `training.json`.
#[test]
fn an_unrelated_out_folder_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data);
    let out = dir.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("loss.csv"), "my own numbers\n").unwrap();
    std::fs::write(out.join("training.json"), "{\"mine\": true}").unwrap();
    for cmd in ["sft", "cpt"] {
        let mut c = ragtune();
        c.args(["train", cmd, "--base"]).arg(smollm2_path());
        match cmd {
            "sft" => c.arg("--data").arg(&data),
            _ => c.arg("--text").arg(&data),
        };
        let (ok, _, err) = run(c.arg("--out").arg(&out).arg("--resume"));
        assert!(!ok, "{cmd}");
        assert!(err.contains(&out.display().to_string()), "{err}");
        assert!(err.contains("loss.csv"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("loss.csv")).unwrap(),
        "my own numbers\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("training.json")).unwrap(),
        "{\"mine\": true}"
    );
}

/// An adapter that Python PEFT itself wrote (`tests/fixtures/peft-smollm2`, made once by
/// `make_peft_smollm2.py` beside it: PyTorch training of rank-2 LoRA on q/k/v/o of every layer,
/// stored as bfloat16, for the Hugging Face SmolLM2) answers in llama.cpp as it does in PEFT.
#[test]
fn an_adapter_written_by_python_peft_answers_as_it_did_in_peft() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft-smollm2");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();
    let question = expected["question"].as_str().unwrap();
    assert!(
        expected["peft_greedy"]
            .as_str()
            .unwrap()
            .contains("copper tangerine"),
        "{expected}"
    );
    let base = smollm2_path();
    let base = base.to_str().unwrap();
    let before = greedy(base, None, question);
    assert!(
        !before.contains("tangerine"),
        "the base already knows: {before}"
    );
    // Converted into the home's adapter cache, never beside the fixture.
    let home = tempfile::tempdir().unwrap();
    let (ok, adapted, err) = run(ragtune()
        .args(["generate", "--model", base, "-n", "24", "--threads", "2"])
        .args(["--f32-kv-cache", "--adapter"])
        .arg(&fixture)
        .arg(question)
        .env("RAGTUNE_HOME", home.path()));
    assert!(ok, "{err}");
    assert!(err.contains("converted the PEFT adapter"), "{err}");
    assert!(adapted.contains("copper tangerine"), "{adapted}");
}
