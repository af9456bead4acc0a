//! `ragtune_train::run`, the one training entry point, on the real SmolLM2 weights tokenized by
//! the byte-level ChatML fake (so no llama.cpp is needed): a tiny SFT and CPT job each report
//! their steps and write the adapter and training.json; too little memory and a stop from the
//! event callback end the run before any weight is loaded.

use ragtune_train::testing::ByteChatMl;
use ragtune_train::trainer::CHECKPOINTS;
use ragtune_train::{
    Error, Kind, LoraConfig, RunData, RunEvent, RunReport, RunSpec, Split, TargetModule, gguf,
};
use serde_json::{Value, json};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// What the callback saw, as short strings in order.
fn record(events: &mut Vec<String>) -> impl FnMut(&RunEvent<'_>) -> ControlFlow<()> + '_ {
    move |event| {
        events.push(match event {
            RunEvent::SkippedLines { errors, .. } => format!("skipped {}", errors.len()),
            RunEvent::Rows { split, stats, .. } => format!("rows {split:?} {}", stats.examples),
            RunEvent::Resumed { step, .. } => format!("resumed {step}"),
            RunEvent::NoCheckpoint { .. } => "no checkpoint".into(),
            RunEvent::EvalLossBefore(_) => "eval before".into(),
            RunEvent::Training { total, done } => format!("training {done}/{total}"),
            RunEvent::Step(r) => format!("step {}", r.step),
            RunEvent::Checkpoint(_) => "checkpoint".into(),
        });
        ControlFlow::Continue(())
    }
}

fn spec(data: RunData, out: &Path) -> RunSpec {
    let mut spec = RunSpec::new(data, crate::smollm2_gguf(), out);
    spec.lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: vec![TargetModule::Q, TargetModule::V],
    };
    spec.options.max_steps = Some(2);
    spec.options.batch_size = 2;
    spec.options.lr = 1e-3;
    spec.max_len = 64;
    spec
}

fn training_json(report: &RunReport) -> Value {
    let text = std::fs::read_to_string(&report.files.training_json).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_tiny_sft_run_reports_its_steps_and_writes_the_adapter_and_training_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    let mut lines: Vec<String> = (0..4)
        .map(|i| json!({"prompt": format!("Code {i}?"), "completion": format!("Pelican {i}.")}))
        .map(|v| v.to_string())
        .collect();
    lines.insert(2, "{\"prompt\": \"no completion\"".into());
    std::fs::write(&data, lines.join("\n")).unwrap();
    let out = dir.path().join("run");
    let mut spec = spec(
        RunData::Sft {
            data: data.clone(),
            eval: Some(data.clone()),
            pack: false,
            skip_bad_lines: true,
        },
        &out,
    );
    spec.extra
        .insert("lineage".into(), json!({"from": "the caller"}));

    let mut events = Vec::new();
    let report =
        ragtune_train::run(&spec, &ByteChatMl::default(), &mut record(&mut events)).expect("run");

    assert_eq!(
        events,
        [
            "skipped 1",
            "rows Train 4",
            "skipped 1",
            "rows Eval 4",
            "eval before",
            "training 0/2",
            "step 1",
            "checkpoint",
            "step 2",
        ]
    );
    assert_eq!(report.kind, Kind::Sft);
    assert_eq!(report.steps, 2);
    assert_eq!(report.history.len(), 2);
    assert_eq!(report.skipped_lines, 1);
    assert_eq!((report.rows.examples, report.rows.rows), (4, 4));
    assert!(report.tokens > 0 && report.tokens_per_second > 0.0);
    assert!(report.final_loss.is_some_and(f64::is_finite));
    let (before, after) = (report.eval_loss_before.unwrap(), report.eval_loss.unwrap());
    assert!(before.is_finite() && after.is_finite());
    assert_eq!(report.history[1].eval_loss, Some(after));
    assert!(report.wall_seconds >= report.train_seconds);
    let files = &report.files;
    for file in [
        &files.peft_config,
        &files.peft_weights,
        &files.adapter_gguf,
        &files.training_json,
        &files.loss_csv,
        &files.loss_png,
    ] {
        assert!(file.is_file(), "{} missing", file.display());
        assert_eq!(file.parent(), Some(out.as_path()));
    }

    // training.json: the keys readers use, the caller's extra key, and the report itself.
    let summary = training_json(&report);
    for key in [
        "kind",
        "base",
        "data",
        "eval",
        "pack",
        "skipped_lines",
        "rows",
        "steps",
        "final_loss",
        "eval_loss",
        "eval_loss_before",
        "tokens",
        "train_seconds",
        "tokens_per_second",
        "wall_seconds",
        "peak_rss_mib",
        "lora",
        "options",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing: {summary}");
    }
    assert_eq!(summary["kind"], "sft");
    assert_eq!(summary["steps"], 2);
    assert_eq!(summary["rows"]["sequences"], 4);
    assert_eq!(summary["lora"]["targets"], "q,v");
    assert_eq!(summary["options"]["max_len"], 64);
    assert_eq!(summary["lineage"]["from"], "the caller");
    // The spec's default precision: SmolLM2's weights are whole 32-blocks, so the base ran in
    // bf16 exactly where this CPU has AMX.
    assert_eq!(
        summary["bf16_base"],
        ragtune_train::Precision::Auto.uses_amx()
    );
    assert_eq!(
        PathBuf::from(summary["base"].as_str().unwrap()),
        crate::smollm2_gguf()
    );
    let back: RunReport = serde_json::from_value(summary).unwrap();
    assert_eq!(back, report);

    // The folder is now a finished run: trained into again only with resume, which finds its
    // last checkpoint and has nothing left to do.
    let err = ragtune_train::run(&spec, &ByteChatMl::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(matches!(err, Error::OutDir { .. }), "{err}");
    spec.resume = true;
    let mut events = Vec::new();
    let resumed = ragtune_train::run(&spec, &ByteChatMl::default(), &mut record(&mut events))
        .expect("resume");
    assert!(events.contains(&"resumed 2".to_string()), "{events:?}");
    assert_eq!(resumed.resumed_at, Some(2));
    assert_eq!(resumed.history, report.history);
    assert_eq!(resumed.eval_loss_before, None);
}

#[test]
fn a_tiny_cpt_run_counts_its_files_and_records_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    for (name, text) in [
        ("a.md", "The vault opens at dawn. ".repeat(8)),
        ("b.txt", "Pelicans guard the vault. ".repeat(8)),
        ("skipped.bin", "not text".into()),
    ] {
        std::fs::write(docs.join(name), text).unwrap();
    }
    let out = dir.path().join("run");
    let spec = spec(
        RunData::Cpt {
            text: vec![docs.clone()],
            eval_text: Vec::new(),
        },
        &out,
    );
    let mut events = Vec::new();
    let report =
        ragtune_train::run(&spec, &ByteChatMl::default(), &mut record(&mut events)).expect("run");
    assert_eq!(events[0], "rows Train 2", "{events:?}");
    assert!(!events.iter().any(|e| e == "eval before"), "{events:?}");
    assert_eq!(report.kind, Kind::Cpt);
    assert_eq!(report.steps, 2);
    assert_eq!(report.eval_loss, None);
    // Two documents of ~200 bytes, each followed by EOS, in windows of 64 tokens.
    assert_eq!(report.rows.tokens, 8 * 25 + 8 * 26 + 2);
    assert!(report.rows.rows >= 6 && report.tokens > 0);
    assert!(report.files.adapter_gguf.is_file());
    let summary = training_json(&report);
    assert_eq!(summary["kind"], "cpt");
    assert_eq!(summary["text"], json!([docs]));
    assert_eq!(summary["eval_text"], json!([]));

    // A path that is not there is named.
    let mut missing = spec.clone();
    missing.out = dir.path().join("other");
    missing.data = RunData::Cpt {
        text: vec![dir.path().join("nowhere")],
        eval_text: Vec::new(),
    };
    let err = ragtune_train::run(&missing, &ByteChatMl::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nowhere") && err.contains("does not exist"),
        "{err}"
    );
}

/// The SmolLM2 GGUF cut after its header and tensor table: its configuration reads, its
/// weights do not, so a check that gets past it before failing ran before any weight loaded.
fn header_only_copy(dir: &Path) -> PathBuf {
    use candle_core::quantized::gguf_file::Content;
    let full = crate::smollm2_gguf();
    let mut file = std::fs::File::open(&full).unwrap();
    let offset = Content::read(&mut file).unwrap().tensor_data_offset as usize;
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.join("smollm2-header-only.gguf");
    std::fs::write(&cut, &bytes[..offset]).unwrap();
    assert!(gguf::read_config(&cut).is_ok());
    assert!(gguf::load(&cut).is_err(), "the cut file must not load");
    cut
}

fn sft_data(dir: &Path) -> RunData {
    let data = dir.join("train.jsonl");
    std::fs::write(&data, "{\"prompt\": \"a\", \"completion\": \"b\"}\n").unwrap();
    RunData::Sft {
        data,
        eval: None,
        pack: false,
        skip_bad_lines: false,
    }
}

#[test]
fn too_little_memory_is_refused_before_any_weight_loads() {
    let dir = tempfile::tempdir().unwrap();
    let base = header_only_copy(dir.path());
    let out = dir.path().join("run");
    let mut spec = spec(sft_data(dir.path()), &out);
    spec.base = base.clone();
    spec.memory_limit_mib = Some(64);
    let err = ragtune_train::run(&spec, &ByteChatMl::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    let Error::Memory {
        need_mib,
        limit_mib,
        batch_size,
        ..
    } = &err
    else {
        panic!("expected the memory refusal, got {err}");
    };
    // SmolLM2's f32 weights alone are ~513 MiB.
    assert!(
        *need_mib > 500 && *limit_mib == 64 && *batch_size == 2,
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&base.display().to_string())
            && text.contains("only 64 MiB are available")
            && text.contains("lower --batch-size"),
        "{text}"
    );
    assert!(!out.join(CHECKPOINTS).exists());
}

#[test]
fn a_break_from_the_callback_stops_the_run_and_a_base_without_template_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(sft_data(dir.path()), &dir.path().join("run"));
    spec.base = header_only_copy(dir.path());
    let mut seen = Vec::new();
    let err = ragtune_train::run(&spec, &ByteChatMl::default(), &mut |event| {
        if let RunEvent::Rows { split, .. } = event {
            seen.push(*split);
        }
        ControlFlow::Break(())
    })
    .unwrap_err();
    assert!(matches!(err, Error::Stopped { step: 0, .. }), "{err}");
    assert_eq!(seen, [Split::Train]);
    assert!(!spec.out.join(ragtune_train::out_dir::ADAPTER_GGUF).exists());

    /// The fake with its chat template taken away.
    struct NoTemplate(ByteChatMl);
    impl ragtune_train::tokenize::ChatTokenizer for NoTemplate {
        fn has_chat_template(&self) -> bool {
            false
        }
        fn render(
            &self,
            m: &[ragtune_core::ChatMessage],
            g: bool,
        ) -> ragtune_train::Result<String> {
            self.0.render(m, g)
        }
        fn encode(&self, text: &str) -> ragtune_train::Result<Vec<u32>> {
            self.0.encode(text)
        }
        fn encode_text(&self, text: &str) -> ragtune_train::Result<Vec<u32>> {
            self.0.encode_text(text)
        }
        fn end_of_generation(&self) -> Option<u32> {
            self.0.end_of_generation()
        }
        fn pad_id(&self) -> u32 {
            self.0.pad_id()
        }
    }
    let err = ragtune_train::run(&spec, &NoTemplate(ByteChatMl::default()), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("has no chat template") && err.contains("`ragtune train cpt`"),
        "{err}"
    );
}
