#!/usr/bin/env python3
"""Markdown tables for docs/gpu-validation.md from a GPU results file and a
roofline JSON (both written by scripts/gpu-check.sh).

usage: scripts/gpu-tables.py RESULTS.json [ROOFLINE.json] [--scenario NAME]
"""
import json
import sys


def mib(b):
    return "-" if b is None else "%.2f" % (b / 2**20)


def fmt(x, spec="%.3g"):
    return "-" if x is None else spec % x


def runs_table(res, scenario):
    out = []
    out.append("| mode | batch | strategy | outcome | weights | grads | optimizer | activations | "
               "workspace | other | tracked peak | device peak | device - tracked | "
               "median step | samples/s | deviation from none |")
    out.append("|" + "---|" * 16)
    for r in res["runs"]:
        if r["scenario"] != scenario:
            continue
        m = r.get("memory", {})
        tags = m.get("peak_by_tag", {})
        dev = (m.get("device") or {}).get("peak_bytes")
        peak = m.get("peak_bytes")
        t = (r.get("time") or {}).get("median")
        thr = (r.get("throughput") or {}).get("samples_per_s")
        num = r.get("numerics") or {}
        devs = [v for k, v in num.items() if k != "loss_rel_err" and v is not None]
        deviation = max(devs) if devs else num.get("loss_rel_err")
        if r["outcome"] != "ok":
            out.append("| %s | %d | %s | %s | | | | | | | | | | | | %s |"
                       % (r["mode"], r["batch"], r["strategy"], r["outcome"],
                          r.get("reason", "")[:60]))
            continue
        out.append("| %s | %d | %s | ok | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["mode"], r["batch"], r["strategy"], mib(tags.get("weights")), mib(tags.get("grads")),
            mib(tags.get("optimizer")), mib(tags.get("activations")), mib(tags.get("workspace")),
            mib(tags.get("other")), mib(peak), mib(dev),
            mib(dev - peak) if dev is not None and peak is not None else "-",
            fmt(t / 1e6 if t else None, "%.3f ms"), fmt(thr, "%.0f"), fmt(deviation, "%.2e")))
    return "\n".join(out)


def roofline_table(roof):
    out = []
    out.append("| group | kernel | dtype | shape | median time | achieved | peak (same run) | "
               "ratio | bytes / flops |")
    out.append("|" + "---|" * 9)
    for r in roof["results"]:
        shape = ", ".join("%s=%s" % kv for kv in r.get("shape", {}).items())
        t = r["time"]["median"]
        work = r.get("counting", "")
        if "flops" in r:
            work = "%.3g FLOP, %.3g B" % (r["flops"], r.get("bytes", 0))
        elif "bytes" in r:
            work = "%.3g B" % r["bytes"]
        out.append("| %s | %s | %s | %s | %.2f us | %.4g %s | %.4g %s | %.3f | %s |" % (
            r["group"], r["name"], r.get("dtype", ""), shape, t / 1e3, r["achieved"], r["unit"],
            r["peak"], r["unit"], r["ratio"], work))
    return "\n".join(out)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    res = json.load(open(argv[1]))
    scenario = "mlp"
    if "--scenario" in argv:
        scenario = argv[argv.index("--scenario") + 1]
    d = res["device"]
    print("Device: %s; %s; %s; results created %s by oombench %s.\n"
          % (d["name"], d["driver"], d["runtime"], res["created"], res["tool_version"]))
    print(runs_table(res, scenario))
    if len(argv) > 2 and not argv[2].startswith("--"):
        print()
        print(roofline_table(json.load(open(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
