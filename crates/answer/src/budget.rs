//! Fitting retrieved passages into an explicit prompt budget, measured by the generator's own
//! token count of the whole rendered prompt (chat template included), so the result is exact
//! rather than estimated.
//!
//! Passages are taken in rank order. When the next one does not fit it is trimmed at a word
//! boundary (marked with `…`) if at least `min_trim_chars` of it fit, and filling stops;
//! otherwise it is dropped and the following (lower-ranked, perhaps shorter) ones are tried.

use serde::{Deserialize, Serialize};

/// What became of a retrieved passage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fit", rename_all = "snake_case")]
pub enum PassageFit {
    /// In the prompt, whole.
    Full,
    /// In the prompt, cut after `kept_chars` characters.
    Trimmed { kept_chars: usize },
    /// Left out: it did not fit the budget.
    Dropped,
}

impl PassageFit {
    pub fn in_prompt(self) -> bool {
        !matches!(self, PassageFit::Dropped)
    }
}

/// The outcome of [`fit_passages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fitted {
    /// One per candidate, in candidate order.
    pub fits: Vec<PassageFit>,
    /// The passages in the prompt: candidate index and the text shown.
    pub included: Vec<(usize, String)>,
    /// Tokens of the prompt with the included passages.
    pub prompt_tokens: u32,
}

/// Below this many free tokens, no further passage is tried.
const MIN_ROOM: u32 = 4;

/// What marks a trimmed passage.
pub(crate) const TRIM_MARK: &str = " \u{2026}";

/// Counts the prompt tokens with the given passages (candidate index, text shown).
pub(crate) type Measure<'m, E> = dyn FnMut(&[(usize, &str)]) -> Result<u32, E> + 'm;

/// Fits `candidates` (best first) into `limit` prompt tokens. `measure` counts the tokens of the
/// prompt holding the given passages (candidate index, text), in the given order; `empty` is
/// its count without passages, which the caller has checked against `limit`.
pub(crate) fn fit_passages<E>(
    candidates: &[String],
    limit: u32,
    empty: u32,
    min_trim_chars: usize,
    measure: &mut Measure<'_, E>,
) -> Result<Fitted, E> {
    let n = candidates.len();
    if n == 0 {
        return Ok(Fitted {
            fits: Vec::new(),
            included: Vec::new(),
            prompt_tokens: empty,
        });
    }
    let all: Vec<(usize, &str)> = candidates
        .iter()
        .enumerate()
        .map(|(i, t)| (i, t.as_str()))
        .collect();
    let tokens = measure(&all)?;
    if tokens <= limit {
        return Ok(Fitted {
            fits: vec![PassageFit::Full; n],
            included: all.iter().map(|&(i, t)| (i, t.to_string())).collect(),
            prompt_tokens: tokens,
        });
    }
    let mut fits = vec![PassageFit::Dropped; n];
    let mut included: Vec<(usize, String)> = Vec::new();
    let mut tokens = empty;
    for (i, candidate) in candidates.iter().enumerate() {
        if limit.saturating_sub(tokens) < MIN_ROOM {
            break;
        }
        let mut trial: Vec<(usize, &str)> =
            included.iter().map(|(j, t)| (*j, t.as_str())).collect();
        trial.push((i, candidate));
        let t = measure(&trial)?;
        if t <= limit {
            included.push((i, candidate.clone()));
            fits[i] = PassageFit::Full;
            tokens = t;
            continue;
        }
        let cuts = word_cuts(candidate, min_trim_chars);
        trial.pop();
        let mut try_cut = |cut: usize| -> Result<Option<(String, u32)>, E> {
            let text = format!("{}{TRIM_MARK}", candidate[..cut].trim_end());
            let mut with_cut = trial.clone();
            with_cut.push((i, &text));
            let t = measure(&with_cut)?;
            Ok((t <= limit).then_some((text, t)))
        };
        // The longest prefix that fits: the predicate is monotone in the cut.
        let (mut lo, mut hi) = (0, cuts.len());
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match try_cut(cuts[mid])? {
                Some(found) => {
                    best = Some((cuts[mid], found));
                    lo = mid + 1;
                }
                None => hi = mid,
            }
        }
        if let Some((cut, (text, t))) = best {
            fits[i] = PassageFit::Trimmed {
                kept_chars: candidate[..cut].trim_end().chars().count(),
            };
            included.push((i, text));
            tokens = t;
            break;
        }
    }
    Ok(Fitted {
        fits,
        included,
        prompt_tokens: tokens,
    })
}

/// Byte offsets just after each word of `text` whose prefix holds at least `min_chars`
/// characters, excluding the whole text.
fn word_cuts(text: &str, min_chars: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut prev_space = true;
    for (chars, (i, c)) in text.char_indices().enumerate() {
        let space = c.is_whitespace();
        if space && !prev_space && chars >= min_chars {
            cuts.push(i);
        }
        prev_space = space;
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// One token per word, plus 10 for the rest of the prompt.
    fn words(passages: &[(usize, &str)]) -> Result<u32, Infallible> {
        Ok(10
            + passages
                .iter()
                .map(|(_, t)| t.split_whitespace().count() as u32)
                .sum::<u32>())
    }

    fn texts(words: &[usize]) -> Vec<String> {
        words
            .iter()
            .enumerate()
            .map(|(p, &n)| {
                (0..n)
                    .map(|w| format!("p{p}w{w}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn everything_fits() {
        let c = texts(&[3, 4]);
        let f = fit_passages(&c, 17, 10, 1, &mut words).unwrap();
        assert_eq!(f.fits, vec![PassageFit::Full; 2]);
        assert_eq!(f.prompt_tokens, 17);
    }

    #[test]
    fn a_long_passage_is_dropped_and_a_shorter_one_after_it_kept() {
        let c = texts(&[3, 50, 4]);
        // Trimming needs at least 1000 characters kept, so the long one is dropped.
        let f = fit_passages(&c, 20, 10, 1000, &mut words).unwrap();
        assert_eq!(
            f.fits,
            vec![PassageFit::Full, PassageFit::Dropped, PassageFit::Full]
        );
        assert_eq!(f.prompt_tokens, 17);
        let shown: Vec<usize> = f.included.iter().map(|(i, _)| *i).collect();
        assert_eq!(shown, vec![0, 2]);
    }

    #[test]
    fn a_passage_is_trimmed_to_the_room_left() {
        let c = texts(&[3, 50, 4]);
        let f = fit_passages(&c, 20, 10, 1, &mut words).unwrap();
        // 3 words + 10 = 13; 7 tokens left: 6 words and the trim mark.
        assert_eq!(f.prompt_tokens, 20);
        assert_eq!(f.included[1].1, "p1w0 p1w1 p1w2 p1w3 p1w4 p1w5 \u{2026}");
        assert_eq!(
            f.fits,
            vec![
                PassageFit::Full,
                PassageFit::Trimmed {
                    kept_chars: "p1w0 p1w1 p1w2 p1w3 p1w4 p1w5".len()
                },
                PassageFit::Dropped
            ]
        );
    }

    #[test]
    fn cuts_are_at_word_ends() {
        assert_eq!(word_cuts("ab cd  ef", 0), vec![2, 5]);
        assert_eq!(word_cuts("ab cd  ef", 3), vec![5]);
    }
}
