// llama.cpp's own C API as the generation bench's reference: the same llama.cpp that ragtune
// links (the static libraries llama-cpp-sys-2 built in target/, so the same source, flags and
// kernels), driven the way bench/reference/llama_cpp_reference.py drives llama-cpp-python:
// the prompt in chunks of n_batch, argmax over the last logits, then one token per decode call.
// What it leaves out is every binding: the gap between this and ragtune is ragtune's own
// per-token path. Built and run by bench/reference/llama_cpp_c.sh; prints the reference JSON.
//
//   llama_cpp_c MODEL PROMPT_FILE THREADS DECODE REPEATS [N_CTX (2048)]
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string &why) {
    std::fprintf(stderr, "llama_cpp_c: %s\n", why.c_str());
    std::exit(1);
}

llama_token argmax_last(llama_context *ctx, int n_vocab) {
    const float *logits = llama_get_logits_ith(ctx, -1);
    if (logits == nullptr) die("no logits after decode");
    int best = 0;
    for (int i = 1; i < n_vocab; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return best;
}

void decode(llama_context *ctx, llama_token *tokens, int n) {
    if (llama_decode(ctx, llama_batch_get_one(tokens, n)) != 0) die("llama_decode failed");
}

struct Timing {
    double prompt_s;
    double decode_s;
};

// One greedy continuation of `prompt`, `n` tokens with end of generation ignored, from an empty
// KV cache: time to the first token, then the time of the n - 1 after it. (`prompt` is not
// changed; llama_batch_get_one takes a non-const pointer.)
Timing greedy(llama_context *ctx, std::vector<llama_token> &prompt, int n, int n_batch,
              int n_vocab) {
    llama_memory_clear(llama_get_memory(ctx), true);
    auto t0 = Clock::now();
    for (size_t at = 0; at < prompt.size(); at += n_batch) {
        int len = static_cast<int>(std::min(prompt.size() - at, static_cast<size_t>(n_batch)));
        decode(ctx, prompt.data() + at, len);
    }
    llama_token tok = argmax_last(ctx, n_vocab);
    auto t1 = Clock::now();
    for (int i = 1; i < n; i++) {
        decode(ctx, &tok, 1);
        tok = argmax_last(ctx, n_vocab);
    }
    auto t2 = Clock::now();
    return {std::chrono::duration<double>(t1 - t0).count(),
            std::chrono::duration<double>(t2 - t1).count()};
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) die("usage: llama_cpp_c MODEL PROMPT_FILE THREADS DECODE REPEATS [N_CTX]");
    const char *model_path = argv[1];
    std::ifstream file(argv[2], std::ios::binary);
    if (!file) die(std::string("cannot read ") + argv[2]);
    std::stringstream text;
    text << file.rdbuf();
    const std::string prompt_text = text.str();
    const int threads = std::atoi(argv[3]);
    const int n_decode = std::atoi(argv[4]);
    const int repeats = std::atoi(argv[5]);
    if (threads < 1 || n_decode < 2 || repeats < 1) die("THREADS, DECODE and REPEATS must be >= 1, 2, 1");

    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(model_path, mp);
    if (model == nullptr) die(std::string("cannot load ") + model_path);
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    // The Python reference's settings: 2,048 cells unless told, batches of 512.
    const int n_batch = 512;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = argc == 7 ? std::atoi(argv[6]) : 2048;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_batch;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (ctx == nullptr) die("cannot create a context");

    std::vector<llama_token> prompt(prompt_text.size() + 2);
    int n = llama_tokenize(vocab, prompt_text.data(), static_cast<int32_t>(prompt_text.size()),
                           prompt.data(), static_cast<int32_t>(prompt.size()), true, true);
    if (n < 1) die("the prompt did not tokenize");
    prompt.resize(n);

    double best_prompt = 1e300, best_decode = 1e300;
    for (int rep = 0; rep <= repeats; rep++) {
        Timing t = greedy(ctx, prompt, n_decode, n_batch, n_vocab);
        if (rep == 0) continue;  // the first run warms caches
        best_prompt = std::min(best_prompt, t.prompt_s);
        best_decode = std::min(best_decode, t.decode_s);
    }
    std::printf(
        "{\"engine\": \"llama.cpp C API (llama-cpp-sys-2's static build)\", \"prompt_tokens\": %d, "
        "\"decode_tokens\": %d, \"prompt_tps\": %.3f, \"decode_tps\": %.3f}\n",
        n, n_decode, n / best_prompt, (n_decode - 1) / best_decode);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
