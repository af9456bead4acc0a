//! Picks the next token: plain argmax for greedy decoding, else llama.cpp's sampler chain in
//! llama.cpp's own order (penalties, top-k, top-p, temperature, then the random draw).

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use ragtune_core::SamplingParams;

pub(super) enum Picker {
    /// llama.cpp's greedy sampler copies all logits into a candidate array first (1.8 MB a
    /// token for a 152k vocabulary); a direct argmax gives the same token for less.
    Argmax,
    Chain(LlamaSampler),
}

impl Picker {
    pub fn pick(&mut self, ctx: &LlamaContext<'_>, at: i32) -> LlamaToken {
        match self {
            Picker::Argmax => LlamaToken(argmax(ctx.get_logits_ith(at)) as i32),
            Picker::Chain(sampler) => sampler.sample(ctx, at),
        }
    }
}

/// The natural log of the softmax probability of `token` under `logits`, computed stably
/// (log-sum-exp around the maximum).
pub(super) fn log_probability(logits: &[f32], token: usize) -> f32 {
    let Some(norm) = log_normalizer(logits) else {
        return f32::NEG_INFINITY;
    };
    (f64::from(logits[token]) - norm) as f32
}

/// log(sum(exp(logits))), `None` when no logit is finite.
fn log_normalizer(logits: &[f32]) -> Option<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    Some(f64::from(max) + sum.ln())
}

/// The `n` most likely tokens under `logits` with their log-probabilities, most likely first
/// (the lower id first on ties).
pub(super) fn top_log_probabilities(logits: &[f32], n: usize) -> Vec<(usize, f32)> {
    let Some(norm) = log_normalizer(logits) else {
        return Vec::new();
    };
    let n = n.min(logits.len());
    if n == 0 {
        return Vec::new();
    }
    let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    ids.select_nth_unstable_by(n - 1, by_logit);
    ids.truncate(n);
    ids.sort_by(by_logit);
    ids.into_iter()
        .map(|id| (id, (f64::from(logits[id]) - norm) as f32))
        .collect()
}

/// Index of the largest logit; the first one on ties, as llama.cpp's greedy sampler does.
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

pub(super) fn picker(params: &SamplingParams, n_vocab: i32, history: &[LlamaToken]) -> Picker {
    let penalize = params.repeat_penalty != 1.0;
    if params.is_greedy() && !penalize {
        return Picker::Argmax;
    }
    let mut chain = Vec::new();
    if penalize {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            params.repeat_last_n as i32,
            params.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if params.is_greedy() {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(params.top_k as i32));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(params.seed));
    }
    let mut sampler = LlamaSampler::chain_simple(chain);
    // The repetition penalty counts the prompt too, as llama.cpp's server does.
    if penalize {
        sampler.accept_many(history);
    }
    Picker::Chain(sampler)
}

#[cfg(test)]
mod tests {
    use super::{argmax, log_probability, top_log_probabilities};

    #[test]
    fn log_probability_is_a_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let expected = (f64::from(l).exp() / z).ln() as f32;
            assert!((log_probability(&logits, i) - expected).abs() < 1e-6);
        }
        // Large logits do not overflow.
        assert!((log_probability(&[1000.0, 1000.0], 0) - 0.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn top_log_probabilities_are_the_largest_in_order() {
        let logits = [0.5f32, 3.0, -1.0, 3.0, 2.0];
        let top = top_log_probabilities(&logits, 3);
        let ids: Vec<usize> = top.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, [1, 3, 4]);
        for (id, lp) in top {
            assert!((lp - log_probability(&logits, id)).abs() < 1e-6);
        }
        assert_eq!(top_log_probabilities(&logits, 9).len(), logits.len());
        assert!(top_log_probabilities(&logits, 0).is_empty());
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.0, 2.0, 1.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]), 1);
    }
}
