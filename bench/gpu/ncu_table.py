#!/usr/bin/env python3
"""Sums an `ncu --metrics gpu__time_duration.sum --csv` log by kernel name: calls, total and
per-call microseconds, share of the total; with --steps, the per-step figure (bench/gpu/profile_decode.sh)."""
import argparse, collections, csv, io


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("--steps", type=int, default=0, help="decode steps in the log, for a per-step sum")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    text = open(a.csv, errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        print("no kernel rows in", a.csv)
        return
    rows = list(csv.DictReader(io.StringIO(text[start:])))
    tot = collections.defaultdict(float)
    calls = collections.Counter()
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "nsecond")
        v *= {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit, 1e-3)
        name = r["Kernel Name"][:90]
        tot[name] += v
        calls[name] += 1
    all_us = sum(tot.values())
    print(f"{len(rows)} kernels, {all_us / 1e3:.2f} ms GPU time" +
          (f", {all_us / a.steps / 1e3:.3f} ms per step over {a.steps} steps" if a.steps else ""))
    print(f"{'us total':>10} {'share':>6} {'calls':>6} {'us/call':>8}  kernel")
    for name, us in sorted(tot.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"{us:10.1f} {100 * us / all_us:5.1f}% {calls[name]:6d} {us / calls[name]:8.2f}  {name}")


if __name__ == "__main__":
    main()
