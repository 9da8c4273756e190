#!/usr/bin/env python3
"""Merges one GPU learner run (anchors.json + swarr_learner.jsonl in DIR) into
DIR/gpu_learner.json and prints the Markdown table of docs/gpu.md.

usage: merge_learner.py DIR [COMMIT]"""
import json
import os
import subprocess
import sys

d = sys.argv[1]
commit = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("SWARR_COMMIT", "")
if not commit:
    try:
        commit = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        commit = "unknown"
p = os.path.join(d, "anchors.json")
anchors = json.load(open(p)) if os.path.exists(p) else {}
rows = [json.loads(l) for l in open(os.path.join(d, "swarr_learner.jsonl")) if l.strip()]
gpu = open(os.path.join(d, "gpu.txt")).read().strip() if os.path.exists(os.path.join(d, "gpu.txt")) else ""
by = {r["section"]: r for r in rows if "error" not in r}
# SFT: the fastest checkpointing setting that ran (each setting's row stays in "swarr").
sfts = [r for r in rows if r["section"] == "sft" and "sft_tokens_per_s" in r]
if sfts:
    by["sft"] = max(sfts, key=lambda r: r["sft_tokens_per_s"])
a, s, rl = by.get("attn", {}), by.get("sft", {}), by.get("rl", {})
out = {
    "device": gpu, "commit": commit,
    "attn_fwd_ms": a.get("attn_fwd_ms"), "attn_fwdbwd_ms": a.get("attn_fwdbwd_ms"),
    "band_fwd_ms": a.get("band_fwd_ms"),
    "flex_fwd_ms": anchors.get("flex_swa_fwd_ms"), "flex_fwdbwd_ms": anchors.get("flex_swa_fwdbwd_ms"),
    "fa2win_anchor_fwd_ms": anchors.get("fa2win_fwd_ms"), "fa2win_anchor_bwd_ms": anchors.get("fa2win_bwd_ms"),
    "sft_tokens_per_s": s.get("sft_tokens_per_s"), "hf_sft_tokens_per_s": anchors.get("hf_sft_sdpa_tokens_per_s"),
    "peak_gib_sft": s.get("peak_gib_sft"), "hf_peak_gib_sft": anchors.get("hf_sft_sdpa_peak_gib"),
    "sft_checkpointed_layers": s.get("checkpointed_layers"),
    "rl_step_seconds": rl.get("rl_step_seconds"), "peak_gib_rl": rl.get("peak_gib_rl"),
    "anchors": anchors, "swarr": rows,
}
if out["attn_fwdbwd_ms"] and out["flex_fwdbwd_ms"]:
    out["attn_fwdbwd_vs_flex"] = out["flex_fwdbwd_ms"] / out["attn_fwdbwd_ms"]
if out["attn_fwd_ms"] and out["flex_fwd_ms"]:
    out["attn_fwd_vs_flex"] = out["flex_fwd_ms"] / out["attn_fwd_ms"]
if out["sft_tokens_per_s"] and out["hf_sft_tokens_per_s"]:
    out["sft_vs_hf"] = out["sft_tokens_per_s"] / out["hf_sft_tokens_per_s"]
json.dump(out, open(os.path.join(d, "gpu_learner.json"), "w"), indent=1)


def f(x, fmt="{:.2f}"):
    return "–" if x is None else fmt.format(x)


print(f"GPU learner, {gpu}, commit {commit[:12]}\n")
print("| measurement | SWARR | anchor | ratio (anchor time / SWARR time) |")
print("|---|---|---|---|")
print(f"| attention fwd, B4 H16 T8192 D128 W1024 bf16 (ms) | {f(out['attn_fwd_ms'])} | FlexAttention {f(out['flex_fwd_ms'])} | {f(out.get('attn_fwd_vs_flex'))}x |")
print(f"| attention fwd+bwd (ms) | {f(out['attn_fwdbwd_ms'])} | FlexAttention {f(out['flex_fwdbwd_ms'])} | {f(out.get('attn_fwdbwd_vs_flex'))}x |")
print(f"| band attention fwd (ms), before | {f(out['band_fwd_ms'])} | | |")
print(f"| 1.5B SFT tokens/s (16k tokens/micro-batch) | {f(out['sft_tokens_per_s'], '{:,.0f}')} | HF transformers {f(out['hf_sft_tokens_per_s'], '{:,.0f}')} | {f(out.get('sft_vs_hf'))}x |")
print(f"| 1.5B SFT peak GiB | {f(out['peak_gib_sft'], '{:.1f}')} | HF {f(out['hf_peak_gib_sft'], '{:.1f}')} | |")
for r in rows:
    if r["section"] == "sft":
        print(f"| SFT, {r.get('checkpointed_layers', r.get('checkpoint'))} of 28 layers checkpointed | "
              f"{f(r.get('sft_tokens_per_s'), '{:,.0f}')} tok/s, {f(r.get('peak_gib_sft'), '{:.1f}')} GiB | "
              f"{r.get('error', '')[:60]} | |")
print(f"| 1.5B RL step, 128 x 2,048 tokens (s) | {f(out['rl_step_seconds'])} | | |")
print(f"| 1.5B RL peak GiB | {f(out['peak_gib_rl'], '{:.1f}')} | | |")
