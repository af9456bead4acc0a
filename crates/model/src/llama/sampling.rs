//! Builds llama.cpp's sampler chain from our sampling parameters, in llama.cpp's own order
//! (penalties, top-k, top-p, temperature, then the random draw).

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use ragtune_core::SamplingParams;

pub(super) fn sampler(
    params: &SamplingParams,
    n_vocab: i32,
    history: &[LlamaToken],
) -> LlamaSampler {
    let mut chain = Vec::new();
    if params.repeat_penalty != 1.0 {
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
    if params.repeat_penalty != 1.0 {
        sampler.accept_many(history);
    }
    sampler
}
