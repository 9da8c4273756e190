#!/usr/bin/env python3
"""The one-GPU dress rehearsal of the 1.5B recipe (issue 13, docs/recipes.md "Rehearsal").

  python3 bench/gpu/rehearsal.py --swarr /tmp/b/bin/swarr --shared .device/shared --out $OUT
  (here, to check the script: --shape tiny --device cpu --swarr build/bin/swarr --shared ../shared)

Writes a random-init model directory with Qwen2.5-1.5B's config.json (no weights: the learner
initialises it) and the real Qwen2 tokenizer, a pipeline eval -> SFT -> RL -> eval on GSM8K with
the learner and two rollout servers placed on one GPU, runs it through `swarr launch`, and meanwhile
samples GPU memory per process, times weight loads by both paths (`swarr fetch-weights`) and
reads the rollouts' token counters. Then writes OUT/gpu_rehearsal.json with the measured figures
and the projection of the recipe's hours (configs/recipes/qwen2.5-math-1.5b.yaml) from them.
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, threading, time, urllib.request

QWEN15B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
    "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
    "max_position_embeddings": 4096, "tie_word_embeddings": True, "bos_token_id": 151643,
    "eos_token_id": 151645, "torch_dtype": "bfloat16", "use_sliding_window": False,
}
TINY = dict(QWEN15B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, torch_dtype="float32")


def pipeline_yaml(a, model_dir, tokenizer):
    gpu = a.device != "cpu"
    dt = "bfloat16" if gpu else "float32"
    place = ("placement: {learner: 'cuda:0', rollouts: ['cuda:0'], learner_memory_gib: %g, rollout_memory_gib: %g}\n"
             % (a.learner_gib, a.rollout_gib)) if gpu else ""
    attn = "{window: 128, sinks: 4}"
    data = lambda split, seed: ("{format: gsm8k, path: %s/gsm8k/%s.jsonl, chat_template: chatml, tokenizer: %s%s}"
                                % (a.data, split, tokenizer, ", shuffle: true, seed: %d" % seed if split == "train" else ""))
    ev = "{num_problems: %d, greedy: true, max_new_tokens: %d}" % (a.eval_problems, a.max_new)
    return f"""name: rehearsal
{place}workers: {{max_sequences: {a.max_sequences}, heartbeat_seconds: 2, lease_seconds: 120}}
rpc: {{max_message_bytes: 67108864, deadline_seconds: 120, weight_chunk_bytes: 16777216}}
stages:
  - name: eval_before
    eval: {ev}
    model: {{path: {model_dir}, dtype: {dt}, attention: {attn}}}
    data: {data("test", 0)}
  - name: sft
    seed: 0
    train: {{micro_batch_tokens: {a.micro_tokens}, grad_accum_steps: 1, max_seq_len: 1024}}
    memory: {{activation_checkpointing: true}}
    model: {{path: {model_dir}, dtype: {dt}, attention: {attn}}}
    data: {data("train", 0)}
    optimizer: {{lr: 1.0e-5, grad_clip: 1.0, warmup_steps: 2, schedule: constant}}
    stop: {{max_steps: {a.sft_steps}}}
  - name: rl
    seed: 0
    rl: {{prompts_per_step: {a.rl_prompts}, samples_per_prompt: 8, max_new_tokens: {a.max_new}, temperature: 1.0,
         clip_high: 0.28, minibatches: 2, kl_coef: 0.001, max_importance_weight: 2.0, dynamic_sampling: false,
         reward: verifier, max_staleness: 1}}
    model: {{dtype: {dt}, attention: {attn}}}
    memory: {{activation_checkpointing: true, micro_batch_tokens: {a.micro_tokens}}}
    data: {data("train", 1)}
    optimizer: {{lr: 1.0e-6, grad_clip: 1.0, schedule: constant}}
    stop: {{max_steps: {a.rl_steps}}}
  - name: eval_after
    eval: {ev}
    model: {{dtype: {dt}, attention: {attn}}}
    data: {data("test", 0)}
"""


def read_port(run, name):
    try:
        return int(open(os.path.join(run, "ports", name)).read().strip())
    except (OSError, ValueError):
        return 0


def scrape_tokens(run):
    """Sum of swarr_rollout_tokens_generated_total over the rollouts' /metrics."""
    total = 0.0
    for f in os.listdir(os.path.join(run, "ports")):
        if not (f.startswith("rollout-") and f.endswith(".metrics.port")):
            continue
        try:
            body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % read_port(run, f), timeout=5).read().decode()
        except OSError:
            continue
        for line in body.splitlines():
            if line.startswith("swarr_rollout_tokens_generated_total"):
                total += float(line.split()[-1])
    return total


def sample_gpu(run, out, stop):
    """Peak GPU memory per service (nvidia-smi per process), every second."""
    peak = {}
    while not stop.is_set():
        try:
            q = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        pids = {}
        pdir = os.path.join(run, "pids")
        for f in os.listdir(pdir) if os.path.isdir(pdir) else []:
            try:
                pids[int(open(os.path.join(pdir, f)).read().strip())] = f[:-4]
            except (OSError, ValueError):
                pass
        for line in q.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
                name = pids[int(parts[0])]
                peak[name] = max(peak.get(name, 0.0), float(parts[1]) / 1024.0)
        out.clear()
        out.update(peak)
        stop.wait(1.0)


def jsonl(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return []


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--swarr", default="/tmp/b/bin/swarr")
    p.add_argument("--shared", default=os.path.abspath(".device/shared"))
    p.add_argument("--data", default=os.path.abspath("data"), help="the repository's data/ (GSM8K)")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/out"))
    p.add_argument("--work", default="/tmp/rehearsal")
    p.add_argument("--shape", choices=["qwen2.5-1.5b", "tiny"], default="qwen2.5-1.5b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--sft-steps", type=int, default=10)
    p.add_argument("--rl-steps", type=int, default=5)
    p.add_argument("--rl-prompts", type=int, default=32)
    p.add_argument("--max-new", type=int, default=256)
    p.add_argument("--eval-problems", type=int, default=64)
    p.add_argument("--micro-tokens", type=int, default=16384)
    p.add_argument("--max-sequences", type=int, default=128)
    p.add_argument("--learner-gib", type=float, default=40)
    p.add_argument("--rollout-gib", type=float, default=14)
    p.add_argument("--timeout", type=float, default=540)
    p.add_argument("--commit", default=os.environ.get("SWARR_COMMIT", ""))
    a = p.parse_args()
    a.shared, a.data = os.path.abspath(a.shared), os.path.abspath(a.data)
    shutil.rmtree(a.work, ignore_errors=True)
    model_dir = os.path.join(a.work, "model")
    os.makedirs(model_dir)
    config = QWEN15B if a.shape == "qwen2.5-1.5b" else TINY
    json.dump(config, open(os.path.join(model_dir, "config.json"), "w"), indent=2)
    tokenizer = os.path.join(a.shared, "fixtures/tokenizer/qwen2/tokenizer.json")
    cfg = os.path.join(a.work, "rehearsal.yaml")
    open(cfg, "w").write(pipeline_yaml(a, model_dir, tokenizer))
    os.makedirs(a.out, exist_ok=True)
    shutil.copy(cfg, os.path.join(a.out, "rehearsal.yaml"))
    run = os.path.join(a.work, "run")

    start = time.time()
    proc = subprocess.Popen([a.swarr, "launch", "--config", cfg, "--run-dir", run, "--rollouts", "2", "--quiet"],
                            stdout=open(os.path.join(a.out, "launch.out"), "w"), stderr=subprocess.STDOUT)
    stop, peaks = threading.Event(), {}
    sampler = threading.Thread(target=sample_gpu, args=(run, peaks, stop), daemon=True)
    if a.device != "cpu":
        sampler.start()
    fetch, rl_tokens = [], {}
    rl_metrics = os.path.join(run, "stages", "rl", "metrics.jsonl")
    while proc.poll() is None and time.time() - start < a.timeout:
        time.sleep(1)
        rows = jsonl(rl_metrics)
        if rows and "t0" not in rl_tokens:
            rl_tokens["t0"], rl_tokens["n0"] = time.time(), scrape_tokens(run)
            # Both weight paths against the live learner, on the rollouts' GPU.
            port = read_port(run, "learner.port")
            r = subprocess.run([a.swarr, "fetch-weights", "--learner", "127.0.0.1:%d" % port, "--device",
                                "cuda:0" if a.device != "cpu" else "cpu", "--path",
                                "both" if a.device != "cpu" else "grpc", "--repeat", "3",
                                "--token-dir", os.path.join(run, "tokens")],
                               capture_output=True, text=True, timeout=300)
            fetch = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
            open(os.path.join(a.out, "fetch_weights.jsonl"), "w").write(r.stdout + r.stderr)
        if len(rows) >= a.rl_steps and "t1" not in rl_tokens and "t0" in rl_tokens:
            rl_tokens["t1"], rl_tokens["n1"] = time.time(), scrape_tokens(run)
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait()
    wall = time.time() - start
    stop.set()
    for d in ("logs", "stages"):
        if os.path.isdir(os.path.join(run, d)):
            shutil.copytree(os.path.join(run, d), os.path.join(a.out, "run_" + d), dirs_exist_ok=True)

    sft = jsonl(os.path.join(run, "stages", "sft", "metrics.jsonl"))
    rl = jsonl(rl_metrics)
    med = lambda xs: statistics.median(xs) if xs else None
    # Learner throughput: SFT tokens over SFT time (seconds is cumulative in metrics.jsonl),
    # without the first step (start-up).
    learner_tps = ((sft[-1]["tokens_total"] - sft[0]["tokens_total"]) / (sft[-1]["seconds"] - sft[0]["seconds"])
                   if len(sft) > 1 else None)
    rl_steps = [b["seconds"] - a_["seconds"] for a_, b in zip(rl, rl[1:])]
    rl_step_tokens = med([r.get("tokens", 0) for r in rl])
    rollout_tps = ((rl_tokens["n1"] - rl_tokens["n0"]) / (rl_tokens["t1"] - rl_tokens["t0"])
                   if "t1" in rl_tokens and rl_tokens["t1"] > rl_tokens["t0"] else None)
    # The rollouts' own loads (their logs): "loaded weight version V in S s (B bytes, CUDA IPC)".
    handoffs, grpc_loads = [], []
    for f in sorted(os.listdir(os.path.join(run, "logs"))) if os.path.isdir(os.path.join(run, "logs")) else []:
        if not f.startswith("rollout-"):
            continue
        for line in open(os.path.join(run, "logs", f)):
            m = re.search(r"loaded weight version .* in ([0-9.e+-]+) s \((\d+) bytes(, CUDA IPC)?\)", line)
            if m:
                (handoffs if m.group(3) else grpc_loads).append(float(m.group(1)))
    ipc_fetch = [f["seconds"] for f in fetch if f.get("path") == "ipc" and "seconds" in f]
    grpc_fetch = [f["seconds"] for f in fetch if f.get("path") == "grpc" and "seconds" in f]
    params = None
    for f in fetch:
        if "bytes" in f:
            params = f["bytes"] // (2 if a.device != "cpu" else 4)
            break
    peak_learner = max([r.get("peak_gpu_gib", 0) for r in sft + rl] or [0]) or peaks.get("learner")
    peak_rollout = max([v for k, v in peaks.items() if k.startswith("rollout")] or [0]) or None

    # The recipe's hours from these per-step costs (docs/recipes.md "Rehearsal" shows the sum).
    recipe = {"sft_steps": 120, "sft_tokens_per_step": 16384 * 4, "rl_steps": 300, "rl_prompts": 64,
              "rl_samples": 8, "rl_max_new": 1024}
    proj = {}
    if learner_tps:
        proj["sft_hours_per_arm"] = recipe["sft_steps"] * recipe["sft_tokens_per_step"] / learner_tps / 3600
    if rl_steps and rl_step_tokens:
        # Scaled by tokens per step: the recipe's 64 x 8 samples of up to 1024 new tokens against
        # the rehearsal's measured step tokens.
        scale = recipe["rl_prompts"] * recipe["rl_samples"] * (recipe["rl_max_new"] + 100) / rl_step_tokens
        proj["rl_hours"] = recipe["rl_steps"] * med(rl_steps) * scale / 3600
    if rollout_tps:
        # 8 eval stages: every problem greedy + 8 samples on the first 200 (GSM8K test 1319 at
        # ~300 new tokens, MATH-500 at ~600), 4 arms x 2 sets.
        eval_tokens = 4 * ((1319 + 8 * 200) * 300 + (500 + 8 * 200) * 600)
        proj["eval_hours"] = eval_tokens / rollout_tps / 3600
    total = (2 * proj.get("sft_hours_per_arm", 0) + proj.get("rl_hours", 0) + proj.get("eval_hours", 0)) if proj else None
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip() if a.device != "cpu" else "cpu"
    result = {
        "device": gpu, "commit": a.commit, "shape": a.shape, "params": params, "launch_rc": rc,
        "wall_seconds": round(wall, 1), "completed": rc == 0,
        "weight_handoff_seconds": med(ipc_fetch) if ipc_fetch else med(handoffs),
        "weight_handoff_seconds_in_run": med(handoffs), "grpc_weight_seconds": med(grpc_fetch),
        "grpc_weight_seconds_in_run": med(grpc_loads),
        "rl_step_seconds": med(rl_steps), "rl_step_tokens": rl_step_tokens,
        "rollout_tokens_per_s": rollout_tps, "learner_tokens_per_s": learner_tps,
        "peak_gib_learner": peak_learner, "peak_gib_rollout": peak_rollout,
        "projected_recipe_hours": total, "projection": proj, "recipe_assumed": recipe,
        "settings": {k: v for k, v in vars(a).items() if k not in ("swarr", "shared", "out", "work")},
    }
    json.dump(result, open(os.path.join(a.out, "gpu_rehearsal.json"), "w"), indent=2)
    print(json.dumps(result, indent=2))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
