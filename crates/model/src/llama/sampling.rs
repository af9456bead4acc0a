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
    use super::argmax;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.0, 2.0, 1.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]), 1);
    }
}
