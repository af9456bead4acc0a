//! Exact match and token F1 as the official SQuAD evaluation scripts compute them
//! (`evaluate-v2.0.py`, which agrees with v1.1 on answerable questions).
//!
//! `normalize_answer`: lowercase; remove ASCII punctuation (Python's `string.punctuation`);
//! replace the words `a`, `an`, `the` (regex `\b(a|an|the)\b`, Unicode word boundaries) with a
//! space; collapse whitespace.

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// SQuAD's answer normalisation.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    let no_articles = remove_articles(&no_punct);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Python's `\w` for `str` patterns: alphanumeric or underscore.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `re.sub(r"\b(a|an|the)\b", " ", text)`.
fn remove_articles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_boundary = prev.is_none_or(|p| !is_word(p));
        let matched = at_boundary
            .then(|| {
                ["a", "an", "the"].into_iter().find(|w| {
                    rest.starts_with(w)
                        && rest[w.len()..].chars().next().is_none_or(|c| !is_word(c))
                })
            })
            .flatten();
        match matched {
            Some(w) => {
                out.push(' ');
                i += w.len();
                prev = w.chars().last();
            }
            None => {
                let c = rest.chars().next().expect("char boundary");
                out.push(c);
                i += c.len_utf8();
                prev = Some(c);
            }
        }
    }
    out
}

/// 1.0 when the normalised strings are equal.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    f64::from(u8::from(
        normalize_answer(prediction) == normalize_answer(gold),
    ))
}

/// Token F1 over normalised whitespace tokens; when either side has no tokens, 1.0 if both
/// have none, else 0.0.
pub fn f1_score(prediction: &str, gold: &str) -> f64 {
    let p = normalize_answer(prediction);
    let g = normalize_answer(gold);
    let p: Vec<&str> = p.split_whitespace().collect();
    let g: Vec<&str> = g.split_whitespace().collect();
    if p.is_empty() || g.is_empty() {
        return f64::from(u8::from(p == g));
    }
    let mut remaining: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for t in &g {
        *remaining.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &p {
        if let Some(n) = remaining.get_mut(t)
            && *n > 0
        {
            *n -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The best exact match and F1 over the gold answers. As in the v2.0 script, gold answers that
/// normalise to nothing are dropped, and no gold answer at all (unanswerable) means the only
/// right prediction is an empty one (an abstention).
pub fn score_answer(prediction: &str, golds: &[String]) -> (f64, f64) {
    let golds: Vec<&str> = golds
        .iter()
        .map(String::as_str)
        .filter(|g| !normalize_answer(g).is_empty())
        .collect();
    let golds = if golds.is_empty() { vec![""] } else { golds };
    golds.iter().fold((0.0f64, 0.0f64), |(em, f1), g| {
        (
            em.max(exact_match(prediction, g)),
            f1.max(f1_score(prediction, g)),
        )
    })
}

/// The yes/no/maybe label an answer gives: the first of `yes`, `no`, `maybe` that is a whole
/// word of the normalised answer (`"Yes, ..."` is yes, `"yes and no"` yes); `None` when there
/// is none (unanswered).
pub fn extract_decision(answer: &str) -> Option<super::Decision> {
    normalize_answer(answer)
        .split_whitespace()
        .find_map(|w| super::Decision::ALL.into_iter().find(|d| d.as_str() == w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_cases() {
        assert_eq!(normalize_answer("The Cat"), "cat");
        assert_eq!(
            normalize_answer("  the  Denver  Broncos. "),
            "denver broncos"
        );
        assert_eq!(normalize_answer("an apple, a day"), "apple day");
        // Only whole words are articles.
        assert_eq!(
            normalize_answer("Theatre and anatomy"),
            "theatre and anatomy"
        );
        // Punctuation goes before articles: "the-end" -> "theend".
        assert_eq!(normalize_answer("the-end"), "theend");
        // A non-ASCII symbol is not punctuation but is a word boundary.
        assert_eq!(normalize_answer("the\u{2013}cat"), "\u{2013}cat");
        assert_eq!(normalize_answer("Ωthe"), "ωthe");
    }

    #[test]
    fn official_examples() {
        assert_eq!(exact_match("The Cat", "cat"), 1.0);
        assert_eq!(exact_match("Denver Broncos", "Broncos"), 0.0);
        let f = f1_score("the cat sat", "cat sat on the mat");
        assert!((f - 2.0 * 1.0 * 0.5 / 1.5).abs() < 1e-12, "{f}");
        assert_eq!(f1_score("Denver Broncos", "Carolina Panthers"), 0.0);
        // Repeated tokens count as often as they occur in both.
        let f = f1_score("x b b b", "b b c");
        assert!((f - 2.0 * (2.0 / 4.0) * (2.0 / 3.0) / (2.0 / 4.0 + 2.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn best_over_golds_and_unanswerable() {
        let golds = vec!["Denver Broncos".to_string(), "Broncos".to_string()];
        assert_eq!(score_answer("broncos", &golds), (1.0, 1.0));
        assert_eq!(score_answer("", &[]), (1.0, 1.0));
        assert_eq!(score_answer("Paris", &[]), (0.0, 0.0));
        assert_eq!(score_answer("", &golds), (0.0, 0.0));
        // A gold that normalises to nothing is ignored.
        assert_eq!(score_answer("", &["the".to_string()]), (1.0, 1.0));
    }
}
