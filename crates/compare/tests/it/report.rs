//! `build` on the synthetic runs: every number checked against its value worked out by hand.

use crate::fixtures::{self, ANSWERABLE, N, Spec, prices, report, run, runs, scenarios};
use ragtune_compare::{
    Approach, CostBasis, Error, Freshness, NO_LABEL, Options, PriceTable, Report, SCHEMA_VERSION,
    Scenarios, UpdateKind, VariantRun, build, render, stats::McNemarMethod,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn metrics_match_hand_computed_values() {
    let r = report();
    assert_eq!(
        (r.questions, r.answerable, r.unanswerable, r.labelled),
        (N, ANSWERABLE, 10, 0)
    );
    let rag = r.variant("rag@qwen2.5-0.5b").unwrap();
    assert!(rag.grounded && !rag.fine_tuned);
    let m = rag.metrics.as_ref().unwrap();
    assert!(close(m.correct.estimate, 0.6) && close(m.exact_match.estimate, 0.6));
    // 60 right at F1 1, 40 wrong at 0.25.
    assert!(close(m.f1.estimate, 0.7));
    assert!(m.correct.lo < 0.6 && m.correct.hi > 0.6 && m.correct.hi - m.correct.lo < 0.25);
    assert!(m.accuracy.is_none(), "no labelled questions");
    // 2 citations each; the 25 questions with i % 4 == 0 have one valid, the rest two.
    assert_eq!((m.citations, m.valid_citations), (200, 175));
    assert!(close(m.citation_validity.unwrap(), 0.875));
    // Abstains on the 10 unanswerable questions and on question 89.
    assert_eq!(m.abstention_unanswerable, Some(1.0));
    assert!(close(m.false_abstention_answerable.unwrap(), 1.0 / 90.0));
    assert_eq!(m.answered, 89);
    // Unsupported: wrong, answered and even: 60, 62, ..., 88.
    assert!(close(m.unsupported_rate.unwrap(), 15.0 / 89.0));
    assert_eq!(m.format_adherence, None);
    // Latency 900 + i ms: numpy.percentile(range(900, 1000), [50, 95]) = 949.5, 994.05.
    assert!(close(m.latency_p50_ms, 949.5) && close(m.latency_p95_ms, 994.05));
    assert!(close(m.sequential_qps.unwrap(), 1000.0 / 949.5));
    assert_eq!(m.batch_throughput_qps, Some(12.5));
    assert!(close(m.mean_prompt_tokens, 1500.0) && close(m.mean_completion_tokens, 20.0));
    // 150 CPU-seconds over 100 questions.
    assert!(close(m.cpu_seconds_per_1000, 1500.0));
    // (1500 x 1 + 20 x 2) / 1e6 USD a question.
    assert!(close(m.hosted_usd_per_1000.unwrap(), 1.54));
    // 1500 CPU-seconds at 0.36 USD an hour.
    assert!(close(m.local_usd_per_1000.unwrap(), 0.15));
    assert_eq!(m.usd_per_1000(), m.hosted_usd_per_1000);

    let raft = r
        .variant("raft@qwen2.5-0.5b")
        .unwrap()
        .metrics
        .clone()
        .unwrap();
    assert!(close(raft.format_adherence.unwrap(), 0.9));
    let sft = r
        .variant("sft@qwen2.5-0.5b")
        .unwrap()
        .metrics
        .clone()
        .unwrap();
    assert_eq!(sft.citation_validity, None, "SFT cites nothing");
    assert_eq!(sft.abstention_unanswerable, Some(0.0));
}

#[test]
fn no_price_means_no_dollar_figure() {
    let r = build(
        &runs(),
        &scenarios(),
        &PriceTable::default(),
        &Options::default(),
    )
    .unwrap();
    let m = r.variants[0].metrics.as_ref().unwrap();
    assert_eq!((m.hosted_usd_per_1000, m.local_usd_per_1000), (None, None));
}

#[test]
fn differences_from_the_best_are_paired_and_tested() {
    let r = report();
    assert_eq!(r.best.as_deref(), Some("raft@qwen2.5-0.5b"));
    assert!(r.variant("raft@qwen2.5-0.5b").unwrap().vs_best.is_none());
    // RAG misses one question RAFT gets: b = 0, c = 1, exact p = 1.
    let rag = r
        .variant("rag@qwen2.5-0.5b")
        .unwrap()
        .vs_best
        .clone()
        .unwrap();
    assert_eq!(rag.against, "raft@qwen2.5-0.5b");
    assert_eq!((rag.mcnemar.b, rag.mcnemar.c), (0, 1));
    assert_eq!(rag.mcnemar.p_value, 1.0);
    assert!(!rag.significant && close(rag.difference.estimate, -0.01));
    // SFT misses four: exact p = 2 / 16.
    let sft = r
        .variant("sft@qwen2.5-0.5b")
        .unwrap()
        .vs_best
        .clone()
        .unwrap();
    assert_eq!((sft.mcnemar.c, sft.mcnemar.p_value), (4, 0.125));
    assert!(!sft.significant);
    // Closed-book misses 31: chi-squared (31 - 1)^2 / 31 = 29.03,
    // scipy.stats.chi2.sf(900 / 31, 1) = 7.118304164714049e-08.
    let cb = r
        .variant("closed_book@qwen2.5-0.5b")
        .unwrap()
        .vs_best
        .clone()
        .unwrap();
    assert_eq!(cb.mcnemar.method, McNemarMethod::ChiSquaredCorrected);
    assert!(
        (cb.mcnemar.p_value / 7.118304164714049e-08 - 1.0).abs() < 2e-7,
        "{}",
        cb.mcnemar.p_value
    );
    assert!(cb.significant && cb.difference.hi < 0.0 && close(cb.difference.estimate, -0.31));
    // Every pair of the four compared variants, both ways round.
    assert_eq!(r.comparisons.len(), 6);
    let flipped = r
        .comparison("raft@qwen2.5-0.5b", "rag@qwen2.5-0.5b")
        .unwrap();
    assert_eq!((flipped.mcnemar.b, flipped.mcnemar.c), (1, 0));
    assert!(close(flipped.difference.estimate, 0.01));
    assert!(close(flipped.difference.lo, -rag.difference.hi));
}

#[test]
fn break_even_in_dollars_and_in_cpu_seconds() {
    let r = report();
    // Training: 3600 CPU-s at 0.36 USD/h = 0.36 USD. Per question: RAG 0.00154 USD, SFT
    // (100 + 40) / 1e6 = 0.00014 USD; 0.36 / 0.0014 = 257.1, so 258 questions.
    let b = r
        .variant("sft@qwen2.5-0.5b")
        .unwrap()
        .break_even
        .clone()
        .unwrap();
    assert_eq!(b.against.as_deref(), Some("rag@qwen2.5-0.5b"));
    assert_eq!(b.basis, Some(CostBasis::Usd));
    assert!(close(b.training_cost.unwrap(), 0.36));
    assert_eq!(b.questions, Some(258));
    // RAFT has longer prompts than RAG: it never pays back.
    let raft = r
        .variant("raft@qwen2.5-0.5b")
        .unwrap()
        .break_even
        .clone()
        .unwrap();
    assert_eq!(raft.questions, None);
    assert!(
        raft.reason
            .unwrap()
            .contains("not cheaper per question than rag@qwen2.5-0.5b")
    );
    // Variants that train nothing have no break-even.
    assert!(r.variant("rag@qwen2.5-0.5b").unwrap().break_even.is_none());

    // Without prices: 3600 CPU-s / (1.5 - 0.5 CPU-s a question) = 3600 questions.
    let r = build(
        &runs(),
        &scenarios(),
        &PriceTable::default(),
        &Options::default(),
    )
    .unwrap();
    let b = r
        .variant("sft@qwen2.5-0.5b")
        .unwrap()
        .break_even
        .clone()
        .unwrap();
    assert_eq!(
        (b.basis, b.questions),
        (Some(CostBasis::CpuSeconds), Some(3600))
    );

    // Without a RAG variant of the same model there is nothing to break even against.
    let only_sft: Vec<_> = runs()
        .into_iter()
        .filter(|r| r.approach != Approach::Rag)
        .collect();
    let r = build(
        &only_sft,
        &Scenarios::default(),
        &prices(),
        &Options::default(),
    )
    .unwrap();
    let b = r
        .variant("sft@qwen2.5-0.5b")
        .unwrap()
        .break_even
        .clone()
        .unwrap();
    assert!(b.questions.is_none() && b.reason.unwrap().contains("add rag@qwen2.5-0.5b"));

    // Training without CPU time recorded: no cost, said so.
    let mut rs = runs();
    rs[1].training.as_mut().unwrap().cpu_seconds = None;
    let r = build(&rs, &Scenarios::default(), &prices(), &Options::default()).unwrap();
    let b = r
        .variant("sft@qwen2.5-0.5b")
        .unwrap()
        .break_even
        .clone()
        .unwrap();
    assert!(b.reason.unwrap().contains("training.cpu_seconds"));
    // The cost table says the cost is unknown, not that it never pays back.
    let cost_row = |table: String, name: &str| {
        let costs = table.split("Speed and cost").nth(1).unwrap().to_owned();
        costs
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap()
            .to_owned()
    };
    let sft_row = cost_row(ragtune_compare::render::terminal(&r), "sft@qwen2.5-0.5b");
    assert!(sft_row.trim_end().ends_with("unknown"), "{sft_row}");
    let raft_row = cost_row(
        ragtune_compare::render::terminal(&report()),
        "raft@qwen2.5-0.5b",
    );
    assert!(raft_row.trim_end().ends_with("never"), "{raft_row}");
}

#[test]
fn a_failed_variant_is_reported_and_the_others_compared() {
    let r = report();
    let failed = r.variant("few_shot@qwen2.5-0.5b").unwrap();
    assert_eq!(
        failed.failed.as_deref(),
        Some("the model ran out of memory")
    );
    assert!(failed.metrics.is_none() && failed.vs_best.is_none());
    assert_eq!(r.variants.len(), 5);
    assert!(
        r.comparisons
            .iter()
            .all(|c| !c.variant.starts_with("few_shot") && !c.against.starts_with("few_shot"))
    );

    // Every variant failed: a report with no best, not an error.
    let all_failed = vec![fixtures::failed_few_shot()];
    let r = build(
        &all_failed,
        &Scenarios::default(),
        &prices(),
        &Options::default(),
    )
    .unwrap();
    assert!(r.best.is_none() && r.questions == 0);
}

#[test]
fn variants_on_different_questions_are_refused() {
    let mut rs = runs();
    rs[2].outcomes.swap(3, 4);
    let e = build(&rs, &Scenarios::default(), &prices(), &Options::default()).unwrap_err();
    assert!(matches!(e, Error::QuestionMismatch { .. }));
    assert_eq!(
        e.to_string(),
        "variant \"raft@qwen2.5-0.5b\" was not run on the same questions as \
         \"rag@qwen2.5-0.5b\": question 4 is \"q004\" where \"rag@qwen2.5-0.5b\" has \"q003\"; \
         run every variant over one question set, in one order"
    );
    let mut rs = runs();
    rs[1].outcomes.pop();
    let e = build(&rs, &Scenarios::default(), &prices(), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("99 questions against 100"), "{e}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let opts = Options::default();
    let none = Scenarios::default();
    assert!(matches!(
        build(&[], &none, &prices(), &opts),
        Err(Error::NoVariants)
    ));

    let mut rs = runs();
    rs[0].outcomes[7].f1 = 1.5;
    let e = build(&rs, &none, &prices(), &opts).unwrap_err().to_string();
    assert!(
        e.contains("\"rag@qwen2.5-0.5b\", question \"q007\": f1 is 1.5"),
        "{e}"
    );

    let mut rs = runs();
    rs[0].outcomes[0].latency_ms = f64::NAN;
    assert!(matches!(
        build(&rs, &none, &prices(), &opts),
        Err(Error::BadOutcome { .. })
    ));

    let mut rs = runs();
    rs[1].name = rs[0].name.clone();
    assert!(matches!(
        build(&rs, &none, &prices(), &opts),
        Err(Error::DuplicateVariant { .. })
    ));

    let mut rs = runs();
    rs[0].outcomes.clear();
    let e = build(&rs, &none, &prices(), &opts).unwrap_err().to_string();
    assert!(e.contains("mark it failed"), "{e}");

    let e = build(
        &runs(),
        &none,
        &prices(),
        &Options {
            resamples: 0,
            ..opts.clone()
        },
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("resamples must be at least 1"));
    let e = build(
        &runs(),
        &none,
        &prices(),
        &Options {
            confidence: 95.0,
            ..opts
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("expected a level between 0 and 1"));
}

#[test]
fn scenarios_are_checked_and_summarised() {
    let r = report();
    let f = &r.scenarios.freshness;
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].followed_rate, f[0].kept_old_rate),
        (Some(0.9), Some(0.1))
    );
    let mut s = scenarios();
    s.freshness.push(Freshness {
        variant: "rag@llama".into(),
        edited_questions: 1,
        followed_new_fact: 1,
        kept_old_fact: 0,
        update_seconds: 1.0,
        update_kind: UpdateKind::Resync,
    });
    let e = build(&runs(), &s, &prices(), &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("the freshness result names variant \"rag@llama\""),
        "{e}"
    );
    let mut s = scenarios();
    s.freshness[0].kept_old_fact = 5;
    let e = build(&runs(), &s, &prices(), &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceed edited_questions (10)"), "{e}");
}

#[test]
fn the_report_is_deterministic_and_round_trips_through_json() {
    let a = report();
    assert_eq!(a, report(), "same seed, same report");
    // Intervals over 100 right/wrong flags move in steps of 0.01 and come out the same
    // under most seeds; F1 values spread over 0..1 show the seed.
    let mut spread = runs();
    for (i, q) in spread[0].outcomes.iter_mut().enumerate() {
        q.f1 = (i * 37 % 101) as f64 / 100.0;
    }
    let f1 = |seed| {
        build(
            &spread,
            &scenarios(),
            &prices(),
            &Options {
                seed,
                ..Options::default()
            },
        )
        .unwrap()
        .variants[0]
            .metrics
            .clone()
            .unwrap()
            .f1
    };
    assert_eq!(f1(1), f1(1));
    assert_ne!(f1(1), f1(2), "the seed is used");
    let other = build(
        &runs(),
        &scenarios(),
        &prices(),
        &Options {
            seed: 1,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(other.options.seed, 1);
    let json = ragtune_compare::render::json(&a).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["variants"][0]["approach"], "rag");
    assert_eq!(v["variants"][0]["metrics"]["correct"]["estimate"], 0.6);
    assert_eq!(v["scenarios"]["freshness"][0]["update_kind"], "re-sync");
    assert_eq!(v["scenarios"]["freshness"][0]["followed_rate"], 0.9);
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
}

#[test]
fn labelled_questions_get_an_accuracy() {
    let mut r = run(&Spec {
        name: "rag@m",
        approach: Approach::Rag,
        right: 50,
        latency_ms: 10.0,
        prompt_tokens: 10,
        cpu_seconds: 1.0,
    });
    for q in &mut r.outcomes[..20] {
        q.labelled = true;
    }
    let rep = build(&[r], &Scenarios::default(), &prices(), &Options::default()).unwrap();
    assert_eq!(rep.labelled, 20);
    let acc = rep.variants[0].metrics.as_ref().unwrap().accuracy.unwrap();
    assert_eq!(acc.estimate, 1.0, "the first 20 are right");
}

/// 20 labelled questions (12 yes, 6 no, 2 maybe) answered by `say(i, gold)`.
fn labelled_run(
    name: &'static str,
    say: impl Fn(usize, &str) -> Option<&'static str>,
) -> VariantRun {
    let mut r = run(&Spec {
        name,
        approach: Approach::Rag,
        right: 0,
        latency_ms: 10.0,
        prompt_tokens: 10,
        cpu_seconds: 1.0,
    });
    r.outcomes.truncate(20);
    for (i, q) in r.outcomes.iter_mut().enumerate() {
        let gold = match i {
            0..12 => "yes",
            12..18 => "no",
            _ => "maybe",
        };
        let said = say(i, gold);
        q.answerable = true;
        q.labelled = true;
        q.correct = said == Some(gold);
        q.gold_label = Some(gold.into());
        q.said_label = said.map(String::from);
    }
    r
}

#[test]
fn labelled_questions_are_split_by_gold_label_beside_the_majority() {
    let always_yes = labelled_run("rag@always-yes", |_, _| Some("yes"));
    // Reads: right on the first 10 yes and the first 5 no, no label on the maybes.
    let reader = labelled_run("rag@reader", |i, gold| match (i, gold) {
        (_, "maybe") => None,
        (0..10 | 12..17, g) => Some(if g == "yes" { "yes" } else { "no" }),
        (_, "yes") => Some("no"),
        _ => Some("yes"),
    });
    // Saved before outcomes recorded labels.
    let mut old = labelled_run("rag@old", |_, _| Some("yes"));
    for q in &mut old.outcomes {
        (q.gold_label, q.said_label) = (None, None);
    }
    let runs = [old, always_yes, reader];
    let rep = build(&runs, &Scenarios::default(), &prices(), &Options::default()).unwrap();
    let majority = rep.majority_label.as_ref().unwrap();
    assert_eq!((majority.label.as_str(), majority.share), ("yes", 0.6));
    let rows = |name: &str| rep.variant(name).unwrap().metrics.clone().unwrap().labels;
    assert!(rows("rag@old").is_empty());
    let yes = rows("rag@always-yes");
    let summary: Vec<_> = yes
        .iter()
        .map(|r| (r.gold.as_str(), r.questions, r.right()))
        .collect();
    assert_eq!(summary, [("yes", 12, 12), ("no", 6, 0), ("maybe", 2, 0)]);
    assert_eq!(yes[1].said.get("yes"), Some(&6));
    let reader = rows("rag@reader");
    let summary: Vec<_> = reader
        .iter()
        .map(|r| (r.gold.as_str(), r.right()))
        .collect();
    assert_eq!(summary, [("yes", 10), ("no", 5), ("maybe", 0)]);
    assert_eq!(reader[2].said.get(NO_LABEL), Some(&2));

    let text = render::terminal(&rep);
    assert!(
        text.contains("Labels: always saying \"yes\" scores 60.0%"),
        "{text}"
    );
    let table = &text[text.find("Labels:").unwrap()..];
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    let cells = |name: &str| {
        line(name)
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cells("rag@always-yes"),
        ["12/12", "0/6", "0/2", "100.0", "0.0", "0.0", "0.0"]
    );
    assert_eq!(
        cells("rag@reader"),
        ["10/12", "5/6", "0/2", "55.0", "35.0", "0.0", "10.0"]
    );
    assert_eq!(cells("rag@old"), ["-"; 7]);

    // The same question with two gold labels is two question sets.
    let mut other = labelled_run("rag@other", |_, _| Some("no"));
    other.outcomes[0].gold_label = Some("no".into());
    let err = build(
        &[runs[1].clone(), other],
        &Scenarios::default(),
        &prices(),
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("gold label"), "{err}");
}

#[test]
fn a_stale_adapter_is_reported_once_and_only_when_something_changed() {
    let rs = runs();
    let adapter = rs
        .iter()
        .find_map(|r| r.adapter.clone())
        .expect("a fine-tuned run");
    let stale = ragtune_compare::StaleAdapter {
        adapter: adapter.clone(),
        changed_documents: 2,
        affected_examples: 5,
    };
    let fresh = ragtune_compare::StaleAdapter {
        adapter: "runs/fresh".into(),
        changed_documents: 0,
        affected_examples: 0,
    };
    let mut s = scenarios();
    // As runs saved before the fix hold them: one entry per variant, and fresh adapters too.
    s.stale_adapters = vec![stale.clone(), fresh, stale.clone()];
    let r = build(&rs, &s, &prices(), &Options::default()).unwrap();
    assert_eq!(r.scenarios.stale_adapters.len(), 1);
    assert_eq!(r.scenarios.stale_adapters[0].result, stale);
    let users: Vec<&str> = rs
        .iter()
        .filter(|r| r.adapter.as_deref() == Some(adapter.as_str()))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(r.scenarios.stale_adapters[0].variants, users);
}
