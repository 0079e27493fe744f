#!/usr/bin/env python3
"""Summarise the per-trial log of scripts/bench-verdicts.sh (LOG=FILE.csv).

For each mode (cmp: compare --normalize; raw: the same runs, raw times; ab)
and variant: how often a regression was reported, with its 95%
Clopper-Pearson interval, how often the step time itself regressed (the
lower end of its interval above the 5% noise threshold), and the spread of
the step-time change over the trials.

    python3 scripts/bench-verdicts-summary.py trials.csv [NOISE_PCT]
"""
import csv
import math
import statistics
import sys


def binom_cdf(k, n, p):
    """P(X <= k) for X ~ Binomial(n, p)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * math.log(p) + (n - i) * math.log1p(-p))
    return min(total, 1.0)


def bisect(f, target, increasing):
    """p in [0, 1] with f(p) = target, f monotonic in p."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k, n, level=0.95):
    """Exact two-sided interval of a binomial proportion k / n."""
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else bisect(lambda p: 1 - binom_cdf(k - 1, n, p), a, True)
    hi = 1.0 if k == n else bisect(lambda p: binom_cdf(k, n, p), a, False)
    return lo, hi


def main():
    path = sys.argv[1]
    noise = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    rows = list(csv.DictReader(open(path)))
    names = {"cmp": "compare --normalize", "raw": "compare, raw times", "ab": "A/B"}
    for mode in ("cmp", "raw", "ab"):
        sel = [r for r in rows if r["mode"] == mode]
        if not sel:
            continue
        print(f"## {names[mode]}")
        for v in ("base", "slow5", "slow10", "mem1"):
            vs = [r for r in sel if r["variant"] == v]
            if not vs:
                continue
            n = len(vs)
            k = sum(int(r["regressed"]) for r in vs)
            lo, hi = clopper_pearson(k, n)
            ch = [float(r["step_change_pct"]) for r in vs if r["step_change_pct"]]
            cl = [float(r["step_ci_low_pct"]) for r in vs if r["step_ci_low_pct"]]
            ks = sum(1 for x in cl if x > noise)
            what = "false alarms (any)" if v == "base" else "detected"
            line = (f"{v:7s} {what}: {k}/{n} = {100 * k / n:.1f}% "
                    f"[{100 * lo:.1f}%, {100 * hi:.1f}%]; step time regressed {ks}/{len(cl)}")
            if len(ch) > 1:
                line += (f"; step change mean {statistics.mean(ch):+.2f}% "
                         f"sd {statistics.stdev(ch):.2f}%, interval low end "
                         f"max {max(cl):+.2f}% min {min(cl):+.2f}%")
            print(line)
            if v != "mem1":
                tally = {}
                for r in vs:
                    for m in filter(None, (r.get("metrics") or "").split(";")):
                        tally[m] = tally.get(m, 0) + 1
                if tally:
                    print("        regressed metrics: " +
                          ", ".join(f"{m} {c}" for m, c in sorted(tally.items())))
        print()


if __name__ == "__main__":
    main()
