#!/usr/bin/env python3
"""Merges one GPU rollout run (anchors.json + swarr_rollout.jsonl in DIR) into
DIR/gpu_rollout.json and prints the Markdown table of docs/gpu.md.

usage: merge_rollout.py DIR [COMMIT]"""
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
anchors = json.load(open(os.path.join(d, "anchors.json"))) if os.path.exists(os.path.join(d, "anchors.json")) else {}
rows = [json.loads(l) for l in open(os.path.join(d, "swarr_rollout.jsonl")) if l.strip()]
gpu = open(os.path.join(d, "gpu.txt")).read().strip() if os.path.exists(os.path.join(d, "gpu.txt")) else ""
out = {"device": gpu, "commit": commit, "copy_GBps": anchors.get("copy_GBps_rw"), "anchors": anchors, "swarr": rows}
tag = "qwen2_0.5b_swa1024"
gen = [r for r in rows if r.get("kind") == "generate"]
for r in gen:
    if r["model"] == tag and r["prompt"] == 256 and r["new_tokens"] == 512 and r["top_k"] == 50 and r["cuda_graphs"]:
        out[f"swarr_tok_s_bs{r['batch']}"] = r["tok_s"]
        hf = anchors.get(f"hf_generate_qwen2_0.5b_swa1024_bs{r['batch']}_tok_s")
        if hf:
            out[f"hf_tok_s_bs{r['batch']}"] = hf
            out[f"ratio_vs_hf_bs{r['batch']}"] = r["tok_s"] / hf
# The engine's decode attention at W=4096 once the rings are full is the dense flash path
# (bf16, no sinks); the other implementations are reported beside it.
for r in rows:
    if r.get("kind") == "decode_kernel" and r["W"] == 4096 and r["H"] == 14:
        impl = r.get("impl", "swarr_split")
        suffix = "" if impl == "flash2_dense" else "_" + impl
        out[f"decode_kernel_GBps_W4096_B{r['B']}{suffix}"] = r["GBps"]
        if out["copy_GBps"]:
            out[f"decode_kernel_pct_copy_W4096_B{r['B']}{suffix}"] = 100 * r["GBps"] / out["copy_GBps"]
json.dump(out, open(os.path.join(d, "gpu_rollout.json"), "w"), indent=1)

print(f"device: {gpu}; commit {commit[:12]}; copy bandwidth {out['copy_GBps'] or 0:.0f} GB/s\n")
print("| model | batch | new | top-k | graphs | SWARR tok/s | ms/step | decode GPU ms/step | GPU busy % | HF tok/s | ratio |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for r in gen:
    hf = anchors.get(f"hf_generate_{r['model']}_bs{r['batch']}_tok_s") if r["new_tokens"] == 512 and r["top_k"] == 50 else None
    hf_s = "" if hf is None else f"{hf:,.0f}"
    ratio = "" if not hf else "%.1fx" % (r["tok_s"] / hf)
    print(f"| {r['model']} | {r['batch']} | {r['new_tokens']} | {r['top_k']} | {'on' if r['cuda_graphs'] else 'off'} | "
          f"{r['tok_s']:,.0f} | {r['ms_per_step']:.2f} | {r.get('decode_device_ms_per_step', 0):.2f} | "
          f"{r.get('gpu_busy_pct_decode', 0):.0f} | {hf_s} | {ratio} |")
print("\n| decode attention | B | H/Hkv | D | W | ms | GB/s | % of copy |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
for r in rows:
    if r.get("kind") == "decode_kernel":
        pct = 100 * r["GBps"] / out["copy_GBps"] if out["copy_GBps"] else 0
        print(f"| {r.get('impl', 'swarr_split')} | {r['B']} | {r['H']}/{r['Hkv']} | {r['D']} | {r['W']} | {r['ms']:.3f} | {r['GBps']:,.0f} | {pct:.0f} |")
for k, v in sorted(anchors.items()):
    if k.startswith("sdpa_decode") and k.endswith("GBps"):
        print(f"| SDPA (anchor) {k[12:-5]} | | | | | | {v:,.0f} | {100 * v / out['copy_GBps'] if out['copy_GBps'] else 0:.0f} |")
