#!/usr/bin/env python3
"""Table of demo runs (bench/demo_run.sh): SA, SWA-SFT, SWA-RL accuracy and window-friendly
shares per seed, and the must-hold check of issue 6 (SA - SWA-SFT >= 0.20 and RL recovering at
least half of that gap, for at least 4 of 5 seeds).

usage: demo_summary.py SA_EVAL.json RUN_DIR... (each RUN_DIR named .../<variant>/seed<S>)
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rl_curve(run):
    rows = []
    try:
        with open(os.path.join(run, "swa_rl", "metrics.jsonl")) as f:
            rows = [json.loads(l) for l in f if l.strip()]
    except OSError:
        pass
    return rows


def main():
    sa = load(sys.argv[1])
    sa_acc = sa["accuracy"] if sa else float("nan")
    print(f"SA accuracy (full attention, n={sa['n'] if sa else '?'}): {sa_acc:.3f}\n")
    print("| variant | seed | SA | SWA-SFT | SWA-RL | WF share greedy SFT→RL | WF share sampled SFT→RL "
          "| RL reward first→last (steps) | gap | recovered | pass |")
    print("|---|---:|---:|---:|---:|---|---|---|---:|---:|---|")
    by_variant = {}
    for run in sys.argv[2:]:
        variant, seed = os.path.basename(os.path.dirname(run.rstrip("/"))), os.path.basename(run.rstrip("/"))
        sft, rl = load(os.path.join(run, "eval_swa_sft.json")), load(os.path.join(run, "eval_swa_rl.json"))
        sft_s, rl_s = load(os.path.join(run, "eval_swa_sft_sampled.json")), load(os.path.join(run, "eval_swa_rl_sampled.json"))
        curve = rl_curve(run)
        if not sft or not rl:
            print(f"| {variant} | {seed} | {sa_acc:.3f} | {'-' if not sft else '%.3f' % sft['accuracy']} | - | | | | | | incomplete |")
            by_variant.setdefault(variant, []).append(False)
            continue
        gap = sa_acc - sft["accuracy"]
        rec = (rl["accuracy"] - sft["accuracy"]) / gap if gap > 0 else float("nan")
        ok = gap >= 0.20 and rl["accuracy"] - sft["accuracy"] >= gap / 2
        by_variant.setdefault(variant, []).append(ok)
        first = sum(r["reward_mean"] for r in curve[:5]) / max(1, len(curve[:5]))
        last = sum(r["reward_mean"] for r in curve[-5:]) / max(1, len(curve[-5:]))
        wf = lambda e: f"{e['window_friendly_share']:.2f}" if e else "-"
        print(f"| {variant} | {seed} | {sa_acc:.3f} | {sft['accuracy']:.3f} | {rl['accuracy']:.3f} | "
              f"{wf(sft)}→{wf(rl)} | {wf(sft_s)}→{wf(rl_s)} | {first:.2f}→{last:.2f} ({len(curve)}) | "
              f"{gap:.2f} | {rec:.2f} | {'yes' if ok else 'no'} |")
    print()
    for v, oks in by_variant.items():
        print(f"{v}: {sum(oks)} of {len(oks)} seeds meet the criterion")


if __name__ == "__main__":
    main()
