//! The recommendation rules on synthetic reports.

use crate::fixtures::{prices, report, run, runs, specs};
use ragtune_compare::{
    Approach, Options, Profile, Report, Scenarios, VariantRun, build, recommend,
};

fn report_of(runs: &[VariantRun]) -> Report {
    build(runs, &Scenarios::default(), &prices(), &Options::default()).unwrap()
}

#[test]
fn changing_documents_recommend_rag() {
    let r = report();
    let rec = recommend(
        &r,
        &Profile {
            changes_per_month: 4.0,
            ..Profile::default()
        },
    );
    // RAFT is the most accurate by one question (not significant); with changing documents
    // the variant that needs no retraining wins the tie.
    assert_eq!(rec.variant.as_deref(), Some("rag@qwen2.5-0.5b"));
    assert_eq!(rec.approach, Some(Approach::Rag));
    let ruled: Vec<&str> = rec.ruled_out.iter().map(|o| o.variant.as_str()).collect();
    assert_eq!(
        ruled,
        [
            "sft@qwen2.5-0.5b",
            "closed_book@qwen2.5-0.5b",
            "few_shot@qwen2.5-0.5b"
        ]
    );
    let text = rec.text();
    assert!((2..=5).contains(&rec.sentences.len()), "{text}");
    assert!(
        text.starts_with("Use rag@qwen2.5-0.5b (rag): 60.0% correct ["),
        "{text}"
    );
    assert!(text.contains("needs no retraining"), "{text}");
    assert!(
        text.contains(
            "change 4 times a month, which rules out sft@qwen2.5-0.5b and closed_book@qwen2.5-0.5b"
        ),
        "{text}"
    );
    assert!(
        text.contains("new fact on 9 of 10 edited questions"),
        "{text}"
    );
}

#[test]
fn citations_required_rule_out_ungrounded_variants() {
    let rec = recommend(
        &report(),
        &Profile {
            citations_required: true,
            ..Profile::default()
        },
    );
    let pick = rec.variant.unwrap();
    assert!(pick == "rag@qwen2.5-0.5b" || pick == "raft@qwen2.5-0.5b");
    assert!(
        rec.ruled_out
            .iter()
            .any(|o| o.variant == "sft@qwen2.5-0.5b" && o.reason.contains("cannot cite"))
    );
}

#[test]
fn stable_documents_and_a_latency_budget_recommend_fine_tuning() {
    let rec = recommend(
        &report(),
        &Profile {
            changes_per_month: 0.0,
            latency_budget_ms: Some(500.0),
            ..Profile::default()
        },
    );
    // RAG and RAFT miss 500 ms at p95 (994 and 1044 ms); SFT (p95 294 ms) is as accurate
    // as the rest and far better than closed-book.
    assert_eq!(rec.variant.as_deref(), Some("sft@qwen2.5-0.5b"));
    assert_eq!(rec.approach, Some(Approach::Sft));
    let text = rec.text();
    assert!(
        text.contains(
            "The 500 ms p95 latency budget rules out rag@qwen2.5-0.5b and raft@qwen2.5-0.5b"
        ),
        "{text}"
    );
    assert!(
        text.contains("pays for itself against rag@qwen2.5-0.5b after 258 questions"),
        "{text}"
    );
}

#[test]
fn stable_documents_without_constraints_take_the_cheapest_equivalent() {
    // RAFT is the most accurate; RAG, one question behind (not significant, within the
    // 2-point margin), is equivalent and cheaper, so RAG. SFT, 4 points behind, is outside
    // the margin although not significantly worse.
    let rec = recommend(&report(), &Profile::default());
    assert_eq!(rec.variant.as_deref(), Some("rag@qwen2.5-0.5b"));
    assert!(
        rec.text().contains("costs less per question"),
        "{}",
        rec.text()
    );
}

#[test]
fn failed_variants_are_never_recommended() {
    // The failed variant is listed first and its (absent) numbers must not win.
    let mut rs = vec![crate::fixtures::failed_few_shot()];
    rs.extend(runs().into_iter().filter(|r| r.failed.is_none()));
    let r = report_of(&rs);
    for profile in [
        Profile::default(),
        Profile {
            changes_per_month: 10.0,
            ..Profile::default()
        },
        Profile {
            latency_budget_ms: Some(300.0),
            ..Profile::default()
        },
    ] {
        let rec = recommend(&r, &profile);
        assert_ne!(rec.variant.as_deref(), Some("few_shot@qwen2.5-0.5b"));
        assert!(
            rec.ruled_out
                .iter()
                .any(|o| o.variant == "few_shot@qwen2.5-0.5b"
                    && o.reason == "it failed: the model ran out of memory")
        );
    }
    // Only a failed variant: nothing is recommended, and the reason says so.
    let r = report_of(&[crate::fixtures::failed_few_shot()]);
    let rec = recommend(&r, &Profile::default());
    assert!(rec.variant.is_none());
    assert!(
        rec.text()
            .starts_with("No variant can be recommended: none ran to completion.")
    );
    assert!(rec.sentences.len() >= 2);
}

#[test]
fn a_significantly_worse_variant_only_when_the_best_is_ruled_out() {
    // Closed-book is cheapest and fastest but 31 questions behind: never picked on cost.
    let r = report();
    for profile in [
        Profile::default(),
        Profile {
            cost_budget_usd_per_1000: Some(10.0),
            ..Profile::default()
        },
    ] {
        let rec = recommend(&r, &profile);
        let pick = rec.variant.unwrap();
        let vs = r.variant(&pick).unwrap().vs_best.clone();
        assert!(
            vs.is_none_or(|c| !c.significant),
            "{pick} is significantly worse"
        );
    }
    // A latency budget of 250 ms rules out all but closed-book: then it is recommended, and
    // the text says the best breaks a constraint.
    let rec = recommend(
        &r,
        &Profile {
            latency_budget_ms: Some(250.0),
            ..Profile::default()
        },
    );
    assert_eq!(rec.variant.as_deref(), Some("closed_book@qwen2.5-0.5b"));
    assert!(
        rec.text().contains("but it breaks a constraint"),
        "{}",
        rec.text()
    );
    // Nothing meets 10 ms.
    let rec = recommend(
        &r,
        &Profile {
            latency_budget_ms: Some(10.0),
            ..Profile::default()
        },
    );
    assert!(rec.variant.is_none());
    assert!(
        rec.text()
            .contains("every variant that ran breaks a constraint")
    );
}

#[test]
fn a_significantly_better_fine_tuned_grounded_variant_wins_even_with_changing_documents() {
    // RAFT far ahead of RAG (75 vs 55): changing documents do not rule RAFT out (it retrieves)
    // and RAG is significantly worse, so RAFT. The runner-up overall is SFT (57).
    let mut s = specs();
    s[0].right = 55;
    s[2].right = 75;
    let rs: Vec<VariantRun> = s.iter().map(run).collect();
    let rec = recommend(
        &report_of(&rs),
        &Profile {
            changes_per_month: 30.0,
            ..Profile::default()
        },
    );
    assert_eq!(rec.variant.as_deref(), Some("raft@qwen2.5-0.5b"));
    assert!(
        rec.text().contains(
            "It is the most accurate; the runner-up, sft@qwen2.5-0.5b, is lower by 18.0 points"
        ),
        "{}",
        rec.text()
    );
}

#[test]
fn a_training_budget_rules_out_long_training() {
    let rec = recommend(
        &report(),
        &Profile {
            training_budget_hours: Some(0.25),
            latency_budget_ms: Some(500.0),
            ..Profile::default()
        },
    );
    // SFT trained for 0.5 h; RAG and RAFT are too slow: only closed-book is left.
    assert_eq!(rec.variant.as_deref(), Some("closed_book@qwen2.5-0.5b"));
    assert!(rec.ruled_out.iter().any(|o| {
        o.variant == "sft@qwen2.5-0.5b"
            && o.reason
                .contains("training took 0.5 h, over the 0.25 h budget")
    }));
}

#[test]
fn a_profile_reads_from_toml_with_clear_errors() {
    let p = Profile::parse(
        "changes_per_month = 4\nlatency_budget_ms = 800\ncitations_required = true\n",
        std::path::Path::new("profile.toml"),
    )
    .unwrap();
    assert!(p.documents_change() && p.citations_required);
    assert_eq!(p.latency_budget_ms, Some(800.0));
    let e = Profile::parse(
        "latency_budget = 800\n",
        std::path::Path::new("profile.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("profile.toml: (file): line 1: unknown field `latency_budget`"),
        "{e}"
    );
    let e = Profile::parse(
        "changes_per_month = -1\n",
        std::path::Path::new("profile.toml"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "profile.toml: changes_per_month: -1 is out of range; expected a number >= 0"
    );
}
