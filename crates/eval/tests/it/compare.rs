//! The comparison workflow on fakes: variants parsed, run side by side, a failing one reported
//! as failed, freshness edits followed by RAG and undone afterwards.

use super::{Rivers, rag_generator, rivers};
use anyhow::Result;
use ragtune_answer::AskOptions;
use ragtune_answer::testing::FakeGenerator;
use ragtune_compare::{Approach, UpdateKind};
use ragtune_core::{Generator, Query, Retriever, SearchMode};
use ragtune_eval::scenarios::plan_edits;
use ragtune_eval::{
    Budget, Inputs, Models, Passages, Plan, TrainPlan, Trainer, VariantSpec, compare,
};
use ragtune_retrieve::KbRetriever;
use std::path::Path;

#[test]
fn variant_specs_parse_and_bad_ones_say_how_to_write_them() {
    let v = VariantSpec::parse("raft:runs/r1@smollm2-135m-instruct").unwrap();
    assert_eq!(v.approach, Approach::Raft);
    assert_eq!(v.adapter.as_deref(), Some(Path::new("runs/r1")));
    assert_eq!(v.model.as_deref(), Some("smollm2-135m-instruct"));
    let v = VariantSpec::parse("sft+rag:out").unwrap();
    assert_eq!((v.approach, v.model), (Approach::SftRag, None));
    assert_eq!(
        VariantSpec::parse("closed-book").unwrap().approach,
        Approach::ClosedBook
    );
    let err = VariantSpec::parse("raft")
        .unwrap()
        .check_adapter()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs an adapter") && err.contains("--train"),
        "{err}"
    );
    let v = VariantSpec::parse("sft+rag:runs/a@m,top_k=1").unwrap();
    assert_eq!(v.adapter.as_deref(), Some(Path::new("runs/a")));
    assert_eq!((v.model.as_deref(), v.top_k), (Some("m"), Some(1)));
    let v = VariantSpec::parse("rag@m,top_k=1").unwrap();
    assert_eq!((v.model.as_deref(), v.top_k), (Some("m"), Some(1)));
    for (bad, says) in [
        ("rag,top_k=0", "above 0"),
        ("rag,k=1", "unknown setting"),
        // The first comma ends the spec: an adapter path cannot hold one.
        ("sft:runs/a,b@m", "unknown setting"),
        ("rag:runs/x", "takes no adapter"),
        ("rga", "unknown approach"),
        ("rag@", "nothing after @"),
    ] {
        let err = VariantSpec::parse(bad).unwrap_err().to_string();
        assert!(
            err.contains(says) && err.contains("APPROACH[:ADAPTER][@MODEL]"),
            "{bad}: {err}"
        );
    }
}

/// Fakes by model name: `right` answers from the table, `echo` repeats its whole prompt (so
/// whatever the passages say is in its answer), anything else does not load.
struct FakeModels;

impl Models for FakeModels {
    fn generator(
        &self,
        model: &str,
        _adapter: Option<&Path>,
    ) -> Result<Box<dyn Generator + '_>, String> {
        match model {
            "right" => Ok(Box::new(rag_generator())),
            "echo" => Ok(Box::new(FakeGenerator::new(4096, |messages| {
                messages
                    .last()
                    .map(|m| m.content.clone())
                    .unwrap_or_default()
            }))),
            other => Err(format!("no model {other}")),
        }
    }

    fn name_of(&self, path: &Path) -> String {
        path.display().to_string()
    }

    fn perplexity(
        &self,
        _model: &str,
        _adapter: Option<&Path>,
        _text: &str,
        _window: u32,
    ) -> Result<f64, String> {
        Err("not measured by the fakes".into())
    }
}

#[test]
fn every_variant_answers_the_same_questions_and_a_broken_one_is_reported_failed() -> Result<()> {
    let mut r = rivers()?;
    let plan = Plan {
        variants: vec![
            VariantSpec::parse("closed-book@echo")?,
            VariantSpec::parse("rag@right")?,
            VariantSpec::parse("rag@missing")?,
            VariantSpec::parse("sft:no/such/run@right")?,
        ],
        ..Plan::default()
    };
    let options = AskOptions::default();
    let inputs = inputs(&mut r, &options, "right", true);
    let mut lines = Vec::new();
    let out = compare(&plan, inputs, &FakeModels, None, &mut |l| {
        lines.push(l.to_owned())
    })?;
    let names: Vec<&str> = out.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "closed-book@echo",
            "rag@right",
            "rag@missing",
            "sft:run@right"
        ]
    );
    let rag = &out.runs[1];
    assert!(rag.failed.is_none());
    let ids: Vec<&str> = rag.outcomes.iter().map(|o| o.id.as_str()).collect();
    let closed_ids: Vec<&str> = out.runs[0].outcomes.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, closed_ids);
    assert_eq!(rag.outcomes.iter().filter(|o| o.correct).count(), 5);
    assert!(rag.outcomes.iter().all(|o| o.latency_ms > 0.0));
    assert!(rag.cpu_seconds >= 0.0 && rag.wall_seconds > 0.0);
    assert!(rag.batch_throughput_qps.is_none(), "one at a time");
    assert_eq!(out.runs[2].failed.as_deref(), Some("no model missing"));
    assert!(
        out.runs[3]
            .failed
            .as_deref()
            .unwrap()
            .contains("does not exist"),
        "{:?}",
        out.runs[3].failed
    );
    assert!(lines.iter().any(|l| l.contains("failed: no model missing")));
    // Every run reads as a report, failed ones included.
    let report = ragtune_compare::build(
        &out.runs,
        &out.scenarios,
        &Default::default(),
        &Default::default(),
    )?;
    assert_eq!(report.best.as_deref(), Some("rag@right"));
    let closed = report.variant("closed-book@echo").unwrap();
    assert!(closed.vs_best.as_ref().unwrap().significant || report.questions < 10);
    Ok(())
}

#[test]
fn freshness_edits_are_followed_by_rag_and_undone_afterwards() -> Result<()> {
    let mut r = rivers()?;
    let edits = plan_edits(&r.set.all, &r.corpus, 2, 5);
    assert_eq!(edits, plan_edits(&r.set.all, &r.corpus, 2, 5), "seeded");
    assert_eq!(edits.len(), 2);
    for e in &edits {
        assert_eq!(e.edited.text.matches(e.new.as_str()).count(), 1, "{e:?}");
        assert!(!e.edited.text.contains(e.old.as_str()), "{e:?}");
        assert_eq!(e.question.answers, std::slice::from_ref(&e.new));
        assert_eq!(
            e.new.chars().next().unwrap().is_uppercase(),
            e.old.chars().next().unwrap().is_uppercase()
        );
    }
    let plan = Plan {
        variants: vec![
            VariantSpec::parse("rag@echo")?,
            VariantSpec::parse("closed-book@echo")?,
        ],
        freshness: 2,
        seed: 5,
        ..Plan::default()
    };
    let options = AskOptions {
        top_k: 1,
        ..AskOptions::default()
    };
    let inputs = inputs(&mut r, &options, "echo", false);
    let out = compare(&plan, inputs, &FakeModels, None, &mut |_| {})?;
    assert!(out.runs[0].batch_throughput_qps.is_some());
    // Closed-book on the base model cannot take an edit and is not asked.
    assert_eq!(out.scenarios.freshness.len(), 1);
    let f = &out.scenarios.freshness[0];
    assert_eq!(f.variant, "rag@echo");
    assert_eq!(f.update_kind, UpdateKind::Resync);
    assert_eq!(f.edited_questions, 2);
    assert_eq!(f.followed_new_fact, 2, "{f:?}");
    assert_eq!(f.kept_old_fact, 0);
    // The originals are back.
    let retriever = KbRetriever::new(&r.kb, &r.embedder)?;
    for e in &edits {
        let hits = retriever
            .retrieve(&Query::new(
                e.question.question.clone(),
                3,
                SearchMode::Bm25,
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
        assert!(
            texts.iter().any(|t| t.contains(e.old.as_str())),
            "{texts:?}"
        );
        assert!(
            !texts
                .iter()
                .any(|t| t.contains(e.new.as_str()) && !e.original.text.contains(e.new.as_str())),
            "{texts:?}"
        );
    }
    Ok(())
}

#[test]
fn a_variant_s_own_top_k_and_the_format_check_apply_to_its_answers() -> Result<()> {
    let mut r = rivers()?;
    let plan = Plan {
        variants: vec![
            VariantSpec::parse("rag@echo")?,
            VariantSpec::parse("rag@echo,top_k=1")?,
        ],
        ..Plan::default()
    };
    let options = AskOptions {
        top_k: 3,
        ..AskOptions::default()
    };
    // `echo` repeats its prompt, which is not the JSON the schema asks for.
    let dir = tempfile::tempdir()?;
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, r#"{"type": "object"}"#)?;
    let format = ragtune_eval::FormatCheck::json_schema(&schema)?;
    let mut inputs = inputs(&mut r, &options, "echo", true);
    inputs.format = Some(&format);
    let out = compare(&plan, inputs, &FakeModels, None, &mut |_| {})?;
    assert_eq!(out.runs[1].name, "rag@echo,top_k=1");
    let prompt_tokens = |run: &ragtune_compare::VariantRun| -> u64 {
        run.outcomes.iter().map(|o| o.prompt_tokens).sum()
    };
    assert!(
        prompt_tokens(&out.runs[1]) < prompt_tokens(&out.runs[0]),
        "one passage per prompt, not three"
    );
    for run in &out.runs {
        assert!(
            run.outcomes.iter().all(|o| o.format_ok == Some(false)),
            "{run:?}"
        );
    }
    Ok(())
}

/// Freshness on a user's knowledge base edits copies of its files in a copy of it: RAG follows
/// the new facts, while the knowledge base, its files and a scratch copy left by an
/// interrupted run end up as they were (the scratch copy gone).
#[test]
fn freshness_on_a_knowledge_base_edits_copies_and_leaves_the_original_alone() -> Result<()> {
    use ragtune_index::{IngestSource, KnowledgeBase, NoProgress, SyncOptions};
    let r = rivers()?;
    let dir = tempfile::tempdir()?;
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs)?;
    for (i, doc) in r.corpus.docs.iter().enumerate() {
        std::fs::write(
            docs.join(format!("river{i}.md")),
            format!("# River {i}\n\n{}\n", doc.text),
        )?;
    }
    let kb_dir = dir.path().join("kb");
    let source = IngestSource::new(&r.embedder);
    let mut kb = KnowledgeBase::open(&kb_dir, &r.embedder)?;
    kb.sync(
        std::slice::from_ref(&docs),
        &source,
        &r.embedder,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    let before: Vec<(String, String)> = kb
        .documents()?
        .into_iter()
        .map(|d| (d.source, d.hash))
        .collect();
    let files_before: Vec<String> = (0..3)
        .map(|i| std::fs::read_to_string(docs.join(format!("river{i}.md"))))
        .collect::<std::io::Result<_>>()?;
    let scratch = dir.path().join("out").join("scratch");
    std::fs::create_dir_all(scratch.join("kb"))?;
    std::fs::write(
        scratch.join("kb").join("left-over"),
        "from an interrupted run",
    )?;

    let plan = Plan {
        variants: vec![VariantSpec::parse("rag@echo")?],
        freshness: 2,
        seed: 5,
        ..Plan::default()
    };
    let options = AskOptions {
        top_k: 1,
        ..AskOptions::default()
    };
    let inputs = Inputs {
        questions: &r.set,
        passages: Passages::Kb {
            kb: &kb,
            source: &source,
            scratch: scratch.clone(),
        },
        embedder: &r.embedder,
        pool: None,
        options: &options,
        top_k: None,
        default_model: "echo",
        sequential: true,
        format: None,
    };
    let out = compare(&plan, inputs, &FakeModels, None, &mut |_| {})?;
    assert!(out.notes.is_empty(), "{:?}", out.notes);
    let f = &out.scenarios.freshness[0];
    assert_eq!(
        (f.edited_questions, f.followed_new_fact, f.kept_old_fact),
        (2, 2, 0),
        "{f:?}"
    );
    assert_eq!(f.update_kind, UpdateKind::Resync);
    let after: Vec<(String, String)> = kb
        .documents()?
        .into_iter()
        .map(|d| (d.source, d.hash))
        .collect();
    assert_eq!(before, after, "the knowledge base is not written");
    for (i, text) in files_before.iter().enumerate() {
        assert_eq!(
            &std::fs::read_to_string(docs.join(format!("river{i}.md")))?,
            text
        );
    }
    assert!(!scratch.exists(), "the scratch copy is removed");
    Ok(())
}

/// Writes what a training run leaves (no real weights: the fakes ignore adapters) and counts.
struct FakeTrainer(std::sync::Mutex<Vec<(String, bool)>>);

impl Trainer for FakeTrainer {
    fn train(
        &self,
        base: &str,
        data: &Path,
        cpt: bool,
        budget: &Budget,
        out: &Path,
    ) -> Result<(), String> {
        let lines = std::fs::read_to_string(data).map_err(|e| e.to_string())?;
        assert!(!lines.trim().is_empty(), "{}", data.display());
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        std::fs::write(out.join("adapter.gguf"), b"fake").map_err(|e| e.to_string())?;
        let mut training = serde_json::json!({
            "base": base, "wall_seconds": budget.steps as f64, "cpu_seconds": 2.0 * budget.steps as f64,
            "tokens": 1000, "peak_rss_mib": 100,
        });
        // As `ragtune train sft` does: data from `raft build` makes a RAFT adapter.
        if let Some(lineage) = ragtune_raft::lineage(data).map_err(|e| e.to_string())? {
            training["raft"] = serde_json::to_value(lineage).unwrap();
        }
        std::fs::write(out.join("training.json"), training.to_string())
            .map_err(|e| e.to_string())?;
        self.0
            .lock()
            .unwrap()
            .push((data.display().to_string(), cpt));
        Ok(())
    }
}

#[test]
fn train_builds_each_fine_tuned_variant_once_and_reuses_it_by_content() -> Result<()> {
    let mut r = rivers()?;
    let plan = Plan {
        variants: vec![
            VariantSpec::parse("sft")?,
            VariantSpec::parse("sft+rag")?,
            VariantSpec::parse("cpt+rag")?,
            VariantSpec::parse("raft")?,
        ],
        train: Some(TrainPlan {
            questions: r.path.clone(),
            sample: 4,
            seed: 3,
            cache: r._dir.path().join("adapters"),
            base: "right".into(),
            budget: Budget::default(),
            distractors: 1,
            p: 1.0,
        }),
        ..Plan::default()
    };
    let options = AskOptions::default();
    let trainer = FakeTrainer(Default::default());
    let mut run = || {
        let inputs = inputs(&mut r, &options, "echo", false);
        compare(&plan, inputs, &FakeModels, Some(&trainer), &mut |_| {})
    };
    let out = run()?;
    let trained = trainer.0.lock().unwrap().clone();
    assert_eq!(trained.len(), 4, "{trained:?}");
    assert_eq!(
        trained.iter().filter(|(_, cpt)| *cpt).count(),
        1,
        "cpt+rag trains on text"
    );
    for v in &out.runs {
        assert!(v.failed.is_none(), "{:?}", v.failed);
        assert_eq!(v.model, "right", "the training base");
        assert!(
            v.adapter.as_deref().unwrap().contains("adapters"),
            "{:?}",
            v.adapter
        );
        let cost = v.training.as_ref().unwrap();
        assert_eq!(cost.cpu_seconds, Some(120.0));
    }
    // The same inputs again: every adapter comes from the cache.
    run()?;
    assert_eq!(trainer.0.lock().unwrap().len(), 4);
    Ok(())
}

/// The comparison's inputs over the rivers corpus indexed in memory.
fn inputs<'a>(
    r: &'a mut Rivers,
    options: &'a AskOptions,
    default_model: &'a str,
    sequential: bool,
) -> Inputs<'a> {
    Inputs {
        questions: &r.set,
        passages: Passages::Corpus {
            kb: &mut r.kb,
            corpus: &r.corpus,
            counter: &r.embedder,
            max_chunk_tokens: 256,
        },
        embedder: &r.embedder,
        pool: None,
        options,
        top_k: None,
        default_model,
        sequential,
        format: None,
    }
}

/// A knowledge base known only by its retriever (one on PostgreSQL): the variants answer from
/// it as from the same passages indexed for the run; freshness and stale adapters, which need
/// a folder, are noted as not measured instead of silently missing.
#[test]
fn a_knowledge_base_behind_another_retriever_answers_alike_and_says_what_it_cannot_measure()
-> Result<()> {
    let mut r = rivers()?;
    let plan = Plan {
        variants: vec![
            VariantSpec::parse("rag@right")?,
            VariantSpec::parse("closed-book@echo")?,
        ],
        ..Plan::default()
    };
    let options = AskOptions::default();
    let indexed = compare(
        &plan,
        inputs(&mut r, &options, "right", true),
        &FakeModels,
        None,
        &mut |_| {},
    )?;
    let retriever = KbRetriever::new(&r.kb, &r.embedder)?;
    let plan = Plan {
        freshness: 2,
        ..plan
    };
    let inputs = Inputs {
        questions: &r.set,
        passages: Passages::Retriever {
            retriever: &retriever,
            location: "postgres://ragtune@db/rag?kb=rivers".into(),
        },
        embedder: &r.embedder,
        pool: None,
        options: &options,
        top_k: None,
        default_model: "right",
        sequential: true,
        format: None,
    };
    let out = compare(&plan, inputs, &FakeModels, None, &mut |_| {})?;
    let correct = |c: &ragtune_eval::Comparison| -> Vec<bool> {
        c.runs[0].outcomes.iter().map(|o| o.correct).collect()
    };
    assert_eq!(correct(&out), correct(&indexed));
    assert_eq!(out.runs[0].outcomes.iter().filter(|o| o.correct).count(), 5);
    assert!(out.scenarios.freshness.is_empty());
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(
        out.notes[0].starts_with("freshness: not measured on postgres://"),
        "{:?}",
        out.notes
    );
    Ok(())
}
