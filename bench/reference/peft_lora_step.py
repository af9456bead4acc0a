"""LoRA training steps with PyTorch + PEFT on CPU: the reference for ragtune-train's step bench.

Usage: python3 peft_lora_step.py MODEL_DIR GGUF_NAME STEPS BATCH SEQ TARGETS THREADS [PRECISION]
  TARGETS: comma list of PEFT module names (q_proj,v_proj) or "all-linear".
  PRECISION: f32 (default), or bf16-autocast: the forward pass under
  torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's own mixed precision on CPU (linear
  layers in bf16 through oneDNN, AMX where the CPU has it; weights, gradients and the optimizer
  stay f32).
Needs: pip install torch transformers peft gguf (measured with torch 2.15, transformers 5.23,
peft 0.21.2). Loads the same GGUF ragtune-train loads (transformers dequantizes it to f32),
rank 8, alpha 16, dropout 0.05, AdamW lr 1e-4, random token ids (seeded), every position in
the loss. Prints one JSON line: per-step seconds, losses, tokens/s over the steps after the
first, and the process's peak RSS (ru_maxrss, which includes loading, as ragtune's VmHWM does).
"""
import json, resource, sys, time

model_dir, gguf_name = sys.argv[1], sys.argv[2]
steps, batch, seq = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
targets, threads = sys.argv[6], int(sys.argv[7])
precision = sys.argv[8] if len(sys.argv) > 8 else "f32"
assert precision in ("f32", "bf16-autocast"), precision

import torch

torch.set_num_threads(threads)
torch.manual_seed(0)
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_name, dtype=torch.float32)
target_modules = "all-linear" if targets == "all-linear" else targets.split(",")
model = get_peft_model(
    model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=target_modules)
)
model.train()
load_s = time.perf_counter() - t0
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(1))

step_s, losses = [], []
for _ in range(steps):
    t = time.perf_counter()
    if precision == "bf16-autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, labels=ids)
    else:
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    step_s.append(time.perf_counter() - t)
    losses.append(out.loss.item())

timed = step_s[1:] or step_s
print(json.dumps({
    "engine": f"torch {torch.__version__} + peft {__import__('peft').__version__}, {precision}",
    "precision": precision,
    "load_s": load_s,
    "step_s": step_s,
    "loss": losses,
    "tokens_per_s": batch * seq / (sum(timed) / len(timed)),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
}))
