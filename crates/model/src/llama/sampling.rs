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
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f32::NEG_INFINITY;
    }
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    ((f64::from(logits[token] - max)) - sum.ln()) as f32
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
    use super::{argmax, log_probability};

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
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.0, 2.0, 1.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]), 1);
    }
}
