"""Asserts that two oombench results files hold the same runs (in the same
order), outcomes, memory per tag and space to the byte, and check results.
Used by tests/test_shards.sh. Standard library only."""
import json
import sys


def key(run):
    return (run["scenario"], run["mode"], run["batch"], run["strategy"])


def memory(run):
    m = run.get("memory") or {}
    spaces = m.get("spaces") or {}
    return (m.get("peak_bytes"), m.get("peak_by_tag"),
            {k: v.get("peak_by_tag") for k, v in spaces.items()},
            {k: v for k, v in (m.get("transfers") or {}).items() if k != "copy_ns"})


def main(a_path, b_path):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    ra, rb = a["runs"], b["runs"]
    assert [key(r) for r in ra] == [key(r) for r in rb], \
        "runs differ:\n%s\n%s" % ([key(r) for r in ra], [key(r) for r in rb])
    for x, y in zip(ra, rb):
        assert x["outcome"] == y["outcome"], (key(x), x["outcome"], y["outcome"])
        assert memory(x) == memory(y), (key(x), memory(x), memory(y))
        assert len(x["time"]["samples"]) == len(y["time"]["samples"]), key(x)
        assert x["seq"] == y["seq"], key(x)
    ca = [(c["scenario"], c["mode"], c["batch"], c["expr"], c["status"]) for c in a["checks"]]
    cb = [(c["scenario"], c["mode"], c["batch"], c["expr"], c["status"]) for c in b["checks"]]
    assert ca == cb, "checks differ:\n%s\n%s" % (ca, cb)
    print("same %d runs, memory per tag, %d checks" % (len(ra), len(ca)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
