//! The terminal, JSON and HTML renderings of the synthetic report.

use crate::fixtures::{prices, report, runs, scenarios};
use ragtune_compare::{Options, Profile, Report, build, recommend, render};

pub fn report_with_recommendation() -> Report {
    let mut r = report();
    r.recommendation = Some(recommend(
        &r,
        &Profile {
            changes_per_month: 4.0,
            ..Profile::default()
        },
    ));
    r
}

#[test]
fn terminal_tables_are_aligned_with_intervals_and_marks() {
    let text = render::terminal(&report_with_recommendation());
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ragtune compare: 5 variants on 100 questions (90 answerable, 10 unanswerable); 95% intervals from 2000"));
    let header = lines
        .iter()
        .position(|l| l.starts_with("variant "))
        .unwrap();
    let correct_end = lines[header].find("correct").unwrap() + "correct".len();
    // The correct column is right-aligned: each compared row's interval ends under the header.
    for line in &lines[header + 2..header + 6] {
        assert_eq!(&line[correct_end - 1..correct_end], "]", "{line}");
    }
    let row = |name: &str| {
        lines[header..]
            .iter()
            .find(|l| l.starts_with(name))
            .copied()
            .unwrap()
    };
    assert!(row("rag@").contains("60.0 ["), "{}", row("rag@"));
    assert!(row("raft@").contains(" best"));
    // Closed-book is 31 points behind and significant; RAG one behind and not.
    assert!(row("closed_book@").contains("-31.0 [") && row("closed_book@").contains("] *"));
    assert!(!row("rag@").contains("] *"));
    assert!(row("few_shot@").contains("FAILED: the model ran out of memory"));
    assert!(
        text.contains("Freshness: rag@qwen2.5-0.5b gave the new fact on 9 of 10 edited questions")
    );
    // The speed and cost table (the last one) with training cost and break-even.
    let speed = lines.iter().position(|l| *l == "Speed and cost").unwrap();
    let cost_row = lines[speed..]
        .iter()
        .find(|l| l.starts_with("sft@"))
        .unwrap();
    assert!(
        cost_row.ends_with("1800 s (3600 CPU-s)       258 q"),
        "{cost_row}"
    );
    assert!(text.contains("Recommendation\nUse rag@qwen2.5-0.5b (rag): 60.0% correct ["));
    assert!(
        lines.iter().all(|l| l.chars().count() <= 200),
        "no runaway line"
    );
}

#[test]
fn json_is_the_report() {
    let r = report_with_recommendation();
    let json = render::json(&r).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["recommendation"]["variant"], "rag@qwen2.5-0.5b");
    assert_eq!(v["best"], "raft@qwen2.5-0.5b");
}

#[test]
fn html_is_self_contained_and_escapes_user_strings() {
    let mut rs = runs();
    rs[3].name = "closed_book@<script>alert('x')</script>&\"q\"".into();
    let mut r = build(&rs, &scenarios(), &prices(), &Options::default()).unwrap();
    r.recommendation = Some(recommend(&r, &Profile::default()));
    let html = render::html(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script"),
        "user text must not become markup"
    );
    assert!(
        html.contains(
            "closed_book@&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;q&quot;"
        )
    );
    // Nothing loads from elsewhere: the only URL is the SVG namespace.
    let urls = html.matches("http").count();
    assert_eq!(urls, html.matches("http://www.w3.org/2000/svg").count());
    assert!(!html.contains("src=") && !html.contains("<link"));
    // Correct vs latency, cost, abstention curves, loss curves, freshness.
    assert_eq!(html.matches("<svg ").count(), 5);
    for title in [
        "Correct vs latency",
        "Cost per 1,000 questions",
        "Abstention trade-off",
        "Training loss",
        "After a document edit",
    ] {
        assert!(html.contains(title), "{title}");
    }
}

#[test]
fn html_without_prices_or_scenarios_plots_cpu_time() {
    let r = build(
        &runs(),
        &Default::default(),
        &Default::default(),
        &Options::default(),
    )
    .unwrap();
    let html = render::html(&r);
    assert!(html.contains("CPU time per 1,000 questions"));
    assert!(!html.contains("After a document edit"));
    assert!(html.contains("No profile was given"));
}
