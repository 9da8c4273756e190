#!/usr/bin/env python3
"""Table and plot of the window-friendly-share sweep (bench/demo_sweep.sh): one row per run
OUT/wf<SHARE>/seed<S>/results.json, then per share how many seeds met the demo's criterion, and
OUT/recovery_vs_share.svg (share of the SA - SWA-SFT gap that RL recovered, per seed and mean).

usage: demo_sweep_table.py OUT_DIR
"""
import glob, json, os, re, sys


def load_rows(out):
    rows = []
    for path in glob.glob(os.path.join(out, "wf*", "seed*", "results.json")):
        m = re.search(r"wf([0-9.]+)/seed(\d+)/results.json$", path)
        r = json.load(open(path))
        run = os.path.dirname(path)
        first = None
        try:
            for i, l in enumerate(open(os.path.join(run, "stages", "swa_rl", "metrics.jsonl"))):
                if l.strip() and json.loads(l).get("reward_mean", 0) >= 0.9:
                    first = i + 1
                    break
        except OSError:
            pass
        gap = r["sa_acc"] - r["swa_sft_acc"]
        rows.append(dict(share=float(m.group(1)), seed=int(m.group(2)), r=r, first=first,
                         recovered=(r["swa_rl_acc"] - r["swa_sft_acc"]) / gap if gap > 0 else None))
    return sorted(rows, key=lambda x: (x["share"], x["seed"]))


def fmt(v, ci=None):
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def svg(rows, path):
    shares = sorted({x["share"] for x in rows})
    if not shares:
        return
    W, H, L, B = 560, 340, 60, 50
    xs = {s: L + (W - L - 20) * i / max(1, len(shares) - 1) for i, s in enumerate(shares)}
    y = lambda v: H - B - (H - B - 20) * max(-0.1, min(1.05, v)) / 1.05
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W/2}" y="14" text-anchor="middle">RL recovery vs window-friendly share of the SFT data</text>']
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{L}" x2="{W-20}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{v:.2f}</text>')
    out.append(f'<line x1="{L}" x2="{W-20}" y1="{y(0.5):.1f}" y2="{y(0.5):.1f}" stroke="#c33" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{W-22}" y="{y(0.5)-4:.1f}" text-anchor="end" fill="#c33">criterion: half the gap</text>')
    means = []
    for s in shares:
        pts = [x["recovered"] for x in rows if x["share"] == s and x["recovered"] is not None]
        out.append(f'<text x="{xs[s]:.1f}" y="{H-B+18}" text-anchor="middle">{100*s:g}%</text>')
        for i, v in enumerate(pts):
            out.append(f'<circle cx="{xs[s] + 6*(i - (len(pts)-1)/2):.1f}" cy="{y(v):.1f}" r="4" fill="#36c" fill-opacity="0.7"/>')
        if pts:
            means.append((xs[s], y(sum(pts) / len(pts))))
    if len(means) > 1:
        out.append('<polyline fill="none" stroke="#36c" stroke-width="1.5" points="' +
                   " ".join(f"{a:.1f},{b:.1f}" for a, b in means) + '"/>')
    out.append(f'<text x="{W/2}" y="{H-10}" text-anchor="middle">window-friendly share of the SFT data (points: seeds; line: mean)</text>')
    out.append(f'<text x="14" y="{H/2}" transform="rotate(-90 14 {H/2})" text-anchor="middle">recovered share of the gap</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    out = sys.argv[1]
    rows = load_rows(out)
    print("| SFT window-friendly share | seed | SWA-SFT greedy [95%] | SWA-SFT sampled | SWA-SFT pass@8 [95%] | "
          "window-friendly share of SWA-SFT samples | SWA-RL greedy [95%] | SWA-RL sampled | recovered | "
          "window-friendly after RL (greedy) | first RL step with batch reward ≥ 0.9 | wall s | criterion |")
    print("|" + "---|" * 13)
    for x in rows:
        r = x["r"]
        print(f"| {x['share']:g} | {x['seed']} | {fmt(r['swa_sft_acc'], r.get('swa_sft_acc_ci95'))} | "
              f"{fmt(r.get('swa_sft_sampled_acc'))} | {fmt(r.get('swa_sft_pass_at_8'), r.get('swa_sft_pass_at_8_ci95'))} | "
              f"{fmt(r.get('swa_sft_sampled_window_friendly_share'))} | {fmt(r['swa_rl_acc'], r.get('swa_rl_acc_ci95'))} | "
              f"{fmt(r.get('swa_rl_sampled_acc'))} | "
              f"{'–' if x['recovered'] is None else '%.0f%%' % (100 * x['recovered'])} | "
              f"{r['window_friendly_share_after_rl']:.2f} | {x['first'] or 'never'} | {r['wall_seconds']:.0f} | "
              f"{'yes' if r['criterion_met'] else 'no'} |")
    print()
    for s in sorted({x["share"] for x in rows}):
        sub = [x for x in rows if x["share"] == s]
        print(f"wf={s:g}: criterion met in {sum(x['r']['criterion_met'] for x in sub)} of {len(sub)} seeds")
    svg(rows, os.path.join(out, "recovery_vs_share.svg"))


if __name__ == "__main__":
    main()
