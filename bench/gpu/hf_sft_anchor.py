# The HF anchor of the GPU learner benchmark (docs/gpu.md): one SFT step of a random
# Qwen2.5-1.5B-shaped model (all layers sliding, W=1024) in HF transformers, on the same GPU and
# batch as bench/gpu_learner_bench's `sft` section: 8 sequences x 2,048 tokens (16,384 tokens),
# fp32 master weights with bf16 autocast, fused AdamW, gradient checkpointing on, SDPA attention
# (or --attn flex_attention). Prints ANCHOR lines and merges its numbers into $OUT/anchors.json.
#   python3 hf_sft_anchor.py [--attn sdpa] [--steps 4]
import json, os, sys, time
import torch

args = sys.argv[1:]
attn = args[args.index("--attn") + 1] if "--attn" in args else "sdpa"
steps = int(args[args.index("--steps") + 1]) if "--steps" in args else 4
dev = "cuda"
OUTF = os.path.join(os.environ.get("OUT", "/tmp/out"), "anchors.json")
res = {}


def out(k, v):
    res[k] = v
    print(f"ANCHOR {k} = {v:.4g}" if isinstance(v, float) else f"ANCHOR {k} = {v}", flush=True)
    old = {}
    if os.path.exists(OUTF):
        try: old = json.load(open(OUTF))
        except Exception: pass
    old.update(res)
    json.dump(old, open(OUTF, "w"), indent=1)


from transformers import Qwen2Config, Qwen2ForCausalLM
cfg = Qwen2Config(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=True, sliding_window=1024,
                  max_window_layers=0, layer_types=["sliding_attention"] * 28)
try:
    model = Qwen2ForCausalLM._from_config(cfg, attn_implementation=attn, dtype=torch.float32)
except TypeError:
    model = Qwen2ForCausalLM._from_config(cfg, attn_implementation=attn, torch_dtype=torch.float32)
model = model.to(dev).train()
model.gradient_checkpointing_enable()
model.config.use_cache = False
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
B, T = 8, 2048
g = torch.Generator(device="cpu").manual_seed(1)


def step():
    ids = torch.randint(100, 150000, (B, T), generator=g).to(dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


torch.cuda.reset_peak_memory_stats()
for _ in range(2): step()
torch.cuda.synchronize()
t0 = time.time()
for _ in range(steps): loss = step()
torch.cuda.synchronize()
secs = time.time() - t0
out(f"hf_sft_{attn}_tokens_per_s", B * T * steps / secs)
out(f"hf_sft_{attn}_step_seconds", secs / steps)
out(f"hf_sft_{attn}_peak_gib", torch.cuda.max_memory_allocated() / 2**30)
out(f"hf_sft_{attn}_loss", float(loss))
