#!/usr/bin/env python3
"""Checks that checkpoints written by `swarr convert` load in HF transformers and that HF
computes the same logits as `swarr score` on them (attention settings included).

Needs torch, transformers and safetensors, so it runs on the GPU machine
(bench/gpu/device_run.sh), not in CI. usage: hf_crosscheck.py SWARR_BINARY FIXTURES_HF_DIR
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

swarr, fixtures = sys.argv[1], sys.argv[2]
# (fixture, conversion flags, checkpoint dtype)
CASES = [
    ("qwen2_full", ["--layer-windows", "8,0,8"], "float32"),
    ("qwen2_full", ["--window", "5"], "bfloat16"),
    ("qwen2_tied", ["--window", "0"], "float32"),
    ("qwen2_swa", [], "float16"),
    ("llama_full", [], "bfloat16"),
]
failures = 0
tmp = tempfile.mkdtemp()
for i, (name, flags, dtype) in enumerate(CASES):
    out = os.path.join(tmp, f"{name}_{i}")
    subprocess.run([swarr, "convert", "--model", os.path.join(fixtures, name), "--out", out, "--dtype", dtype] + flags,
                   check=True)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    ids = load_file(os.path.join(fixtures, name, "expected.safetensors"))["input_ids"]
    with torch.no_grad():
        ref = model(ids).logits
    scored = os.path.join(tmp, f"score_{i}.safetensors")
    subprocess.run([swarr, "score", "--model", out, "--input", os.path.join(fixtures, name, "expected.safetensors"),
                    "--out", scored], check=True)
    ours = load_file(scored)["logits"]
    err = ((ours - ref).norm() / ref.norm()).item()
    ok = err < 1e-4
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name} {' '.join(flags) or '(as is)'} saved {dtype}: "
          f"HF {type(model).__name__} loads it, logits rel err {err:.2e}")
print(f"{len(CASES) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
