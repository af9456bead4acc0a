//! Synthetic variant runs: 100 questions (90 answerable, the last 10 not); a variant with
//! `right = k` gets questions 0..k right, so two variants differ on exactly |k1 - k2|
//! questions, all discordant the same way.

use ragtune_compare::{
    Approach, Freshness, Options, PriceTable, QuestionOutcome, Report, Scenarios, TrainingCost,
    UpdateKind, VariantRun, build,
};

pub const N: usize = 100;
pub const ANSWERABLE: usize = 90;
pub const MODEL: &str = "qwen2.5-0.5b";

pub struct Spec {
    pub name: &'static str,
    pub approach: Approach,
    pub right: usize,
    /// Question i takes `latency_ms + i` milliseconds.
    pub latency_ms: f64,
    pub prompt_tokens: u64,
    pub cpu_seconds: f64,
}

pub fn run(s: &Spec) -> VariantRun {
    let grounded = s.approach.is_grounded();
    let outcomes = (0..N)
        .map(|i| {
            let answerable = i < ANSWERABLE;
            let correct = i < s.right;
            // Grounded variants abstain on the unanswerable questions and on one answerable.
            let abstained = grounded && (!answerable || i == ANSWERABLE - 1);
            QuestionOutcome {
                id: format!("q{i:03}"),
                answerable,
                exact_match: f64::from(u8::from(correct)),
                f1: if correct { 1.0 } else { 0.25 },
                correct,
                labelled: false,
                gold_label: None,
                said_label: None,
                abstained,
                unsupported: !correct && !abstained && i % 2 == 0,
                citations: if grounded { 2 } else { 0 },
                valid_citations: if grounded {
                    u32::from(i % 4 != 0) + 1
                } else {
                    0
                },
                latency_ms: s.latency_ms + i as f64,
                prompt_tokens: s.prompt_tokens,
                completion_tokens: 20,
                format_ok: (s.approach == Approach::Raft).then_some(i % 10 != 0),
            }
        })
        .collect();
    let training = s.approach.is_fine_tuned().then(|| TrainingCost {
        wall_seconds: 1800.0,
        cpu_seconds: Some(3600.0),
        tokens: 250_000,
        peak_rss_mib: 2048.0,
        // RAFT's targets (reasoning + quotes) are longer and learnt more slowly.
        loss_curve: (0..=20)
            .map(|step| {
                let rate = if s.approach == Approach::Raft {
                    12.0
                } else {
                    6.0
                };
                (step * 10, 2.5 * (-(step as f64) / rate).exp() + 0.4)
            })
            .collect(),
    });
    VariantRun {
        name: s.name.into(),
        spec: s.name.into(),
        approach: s.approach,
        model: MODEL.into(),
        adapter: s
            .approach
            .is_fine_tuned()
            .then(|| format!("runs/{}", s.approach)),
        outcomes,
        wall_seconds: s.cpu_seconds / 2.0,
        cpu_seconds: s.cpu_seconds,
        batch_throughput_qps: grounded.then_some(12.5),
        training,
        failed: None,
        abstention_curve: if grounded {
            (0..=10)
                .map(|k| {
                    let t = k as f64 / 10.0;
                    let shape = if s.approach == Approach::Raft {
                        0.3
                    } else {
                        0.6
                    };
                    (t * t, t.powf(shape))
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// RAG (60 right, slow, long prompts), SFT (57 right, fast, short prompts), RAFT (61 right),
/// closed-book (30 right, fast), few-shot failed.
pub fn specs() -> Vec<Spec> {
    vec![
        Spec {
            name: "rag@qwen2.5-0.5b",
            approach: Approach::Rag,
            right: 60,
            latency_ms: 900.0,
            prompt_tokens: 1500,
            cpu_seconds: 150.0,
        },
        Spec {
            name: "sft@qwen2.5-0.5b",
            approach: Approach::Sft,
            right: 57,
            latency_ms: 200.0,
            prompt_tokens: 100,
            cpu_seconds: 50.0,
        },
        Spec {
            name: "raft@qwen2.5-0.5b",
            approach: Approach::Raft,
            right: 61,
            latency_ms: 950.0,
            prompt_tokens: 1600,
            cpu_seconds: 160.0,
        },
        Spec {
            name: "closed_book@qwen2.5-0.5b",
            approach: Approach::ClosedBook,
            right: 30,
            latency_ms: 150.0,
            prompt_tokens: 60,
            cpu_seconds: 40.0,
        },
    ]
}

pub fn failed_few_shot() -> VariantRun {
    VariantRun {
        failed: Some("the model ran out of memory".into()),
        outcomes: Vec::new(),
        ..run(&Spec {
            name: "few_shot@qwen2.5-0.5b",
            approach: Approach::FewShot,
            right: 0,
            latency_ms: 0.0,
            prompt_tokens: 0,
            cpu_seconds: 0.0,
        })
    }
}

pub fn runs() -> Vec<VariantRun> {
    let mut runs: Vec<VariantRun> = specs().iter().map(run).collect();
    runs.push(failed_few_shot());
    runs
}

pub fn scenarios() -> Scenarios {
    Scenarios {
        freshness: vec![
            Freshness {
                variant: "rag@qwen2.5-0.5b".into(),
                edited_questions: 10,
                followed_new_fact: 9,
                kept_old_fact: 1,
                update_seconds: 2.5,
                update_kind: UpdateKind::Resync,
            },
            Freshness {
                variant: "sft@qwen2.5-0.5b".into(),
                edited_questions: 10,
                followed_new_fact: 1,
                kept_old_fact: 8,
                update_seconds: 1800.0,
                update_kind: UpdateKind::Retrain,
            },
        ],
        ..Scenarios::default()
    }
}

/// 1 USD per million prompt tokens, 2 per million completion tokens; 0.36 USD per CPU-hour.
pub fn prices() -> PriceTable {
    PriceTable::parse(
        &format!(
            "cpu_usd_per_hour = 0.36\n[models.\"{MODEL}\"]\nprompt_usd_per_million = 1\n\
             completion_usd_per_million = 2\n"
        ),
        std::path::Path::new("prices.toml"),
    )
    .expect("valid prices")
}

pub fn report() -> Report {
    build(&runs(), &scenarios(), &prices(), &Options::default()).expect("comparable runs")
}
