#!/usr/bin/env bash
# History by commit: results record the source revision (run --commit, a CI
# variable, else git where the scenario lives) and its commit time; `oombench
# history` over six commits' results with one injected +1 byte and one
# injected 20% slowdown names exactly those two commits, by the verdict
# engine of `compare`; the history chart labels commits in commit order.
#
# usage: test_history.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

cat >"$tmp/small.yaml" <<'YAML'
name: small
model: {input: 32, classes: 4, layers: [{linear: 64}, relu, {linear: 4}]}
mode: train
batch: 16
steps: {warmup: 1, measured: 8}
strategies: [none, checkpoint]
YAML

# where the revision comes from
env -u GITHUB_SHA -u CI_COMMIT_SHA -u BUILDKITE_COMMIT -u CIRCLE_SHA1 -u GIT_COMMIT \
    -u BUILD_VCS_NUMBER "$bin" run -q --commit v1.2-rc --out "$tmp/a" "$tmp/small.yaml" >/dev/null
f=("$tmp"/a/*.json)
[ "$(field "${f[0]}" 'r["source"]["revision"], r["source"]["from"]')" = "('v1.2-rc', '--commit')" ] ||
    bad "--commit: $(field "${f[0]}" 'r["source"]')"
GITHUB_SHA=0123456789abcdef0123456789abcdef01234567 "$bin" run -q --out "$tmp/b" "$tmp/small.yaml" >/dev/null
f=("$tmp"/b/*.json)
[ "$(field "${f[0]}" 'r["source"]["from"]')" = "GITHUB_SHA" ] || bad "GITHUB_SHA: $(field "${f[0]}" 'r["source"]')"
if command -v git >/dev/null; then
    mkdir "$tmp/repo"
    cp "$tmp/small.yaml" "$tmp/repo/"
    (cd "$tmp/repo" && git init -q && git add small.yaml &&
        GIT_COMMITTER_DATE="2026-01-02T03:04:05Z" git -c user.name=t -c user.email=t@t \
            commit -qm one) || bad "git repo"
    head=$(git -C "$tmp/repo" rev-parse HEAD)
    env -u GITHUB_SHA -u CI_COMMIT_SHA -u BUILDKITE_COMMIT -u CIRCLE_SHA1 -u GIT_COMMIT \
        -u BUILD_VCS_NUMBER "$bin" run -q --out "$tmp/c" "$tmp/repo/small.yaml" >/dev/null
    f=("$tmp"/c/*.json)
    [ "$(field "${f[0]}" 'r["source"]["revision"], r["source"]["from"], r["source"]["time"]')" = \
        "('$head', 'git', 1767323045)" ] || bad "git: $(field "${f[0]}" 'r["source"]')"
fi
set +e
"$bin" run -q --commit 'bad rev;' --out "$tmp/d" "$tmp/small.yaml" >/dev/null 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "commit" "$tmp/err" || bad "--commit with a bad name: exit $rc"

# six commits: a tight, fixed time distribution; +1 B at c3, x1.2 at c5
base=("$tmp"/a/*.json)
mkdir "$tmp/h" "$tmp/flat"
python3 - "${base[0]}" "$tmp" <<'PY'
import json, sys
src = json.load(open(sys.argv[1]))
for i in range(1, 7):
    for folder, inject in (("h", True), ("flat", False)):
        r = json.loads(json.dumps(src))
        r["source"] = {"revision": "c%d" % i + "0" * 39, "from": "--commit",
                       "time": 1767000000 + i * 3600}
        for run in r["runs"]:
            t = run["time"]
            f = 1.2 if inject and i >= 5 and run["strategy"] == "checkpoint" else 1.0
            n = len(t["samples"])
            t["samples"] = [int((1000000 + 997 * ((k * 7 + i) % 8)) * f) for k in range(n)]
            t["median"] = sorted(t["samples"])[n // 2]
            for ph in (t.get("phases") or {}).values():
                if isinstance(ph, dict) and ph.get("samples"):
                    ph["samples"] = [int(x * f) for x in ph["samples"]]
            # a quiet machine: the base run's measured run-queue wait (high
            # when the suite runs beside other work) would make the time
            # verdicts inconclusive, as they should be for a busy run
            if "cpu_wait" in t:
                t["cpu_wait"] = {"samples": [0] * n, "share": 0.0}
            if inject and i >= 3 and run["strategy"] == "none":
                run["memory"]["peak_bytes"] += 1
        json.dump(r, open("%s/%s/r%d.json" % (sys.argv[2], folder, i), "w"))
PY
set +e
"$bin" history "$tmp/h" >"$tmp/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || bad "history: exit $rc ($(cat "$tmp/out"))"
grep -q "^  c30000000000: small train batch 16 none memory.total: +1 B" "$tmp/out" ||
    bad "history does not name c3 for +1 B: $(cat "$tmp/out")"
grep -q "^  c50000000000: small train batch 16 checkpoint time.step: +20" "$tmp/out" ||
    bad "history does not name c5 for the slowdown: $(cat "$tmp/out")"
n=$(grep -c "^  c[0-9]0000000000: " "$tmp/out" || true)
others=$(grep "^  c[0-9]0000000000: " "$tmp/out" | grep -v "^  c[35]0000000000: " || true)
[ -z "$others" ] || bad "history names other commits: $others"
[ "$n" -ge 2 ] || bad "history named $n regressions"
set +e
"$bin" history "$tmp/h" --metric memory.total >"$tmp/out2" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "c30000000000" "$tmp/out2" && ! grep -q "c50000000000:" "$tmp/out2" ||
    bad "--metric memory.total: exit $rc $(cat "$tmp/out2")"
"$bin" history "$tmp/flat" >"$tmp/out3" 2>&1 || bad "no regression: exit $? $(cat "$tmp/out3")"
grep -q "no regression in this history" "$tmp/out3" || bad "flat history: $(cat "$tmp/out3")"
set +e
"$bin" history "$tmp/h" --metric no.such >/dev/null 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -eq 2 ] || bad "--metric no.such: exit $rc"

# a revision with terminal escapes from an untrusted file is printed inert
mkdir "$tmp/esc"
python3 - "$tmp/h" "$tmp/esc" <<'PY'
import json, sys
for i in (1, 3):
    r = json.load(open("%s/r%d.json" % (sys.argv[1], i)))
    r["source"]["revision"] = "\x1b[31mc%d\x07" % i
    json.dump(r, open("%s/r%d.json" % (sys.argv[2], i), "w"))
PY
set +e
"$bin" history "$tmp/esc" >"$tmp/out4" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || bad "history of escaped revisions: exit $rc $(cat "$tmp/out4")"
! grep -q $'\x1b' "$tmp/out4" || bad "an escape character reached the terminal"
grep -q '?\[31mc3?' "$tmp/out4" || bad "escaped revision not shown: $(cat "$tmp/out4")"

# the chart: commits in order, labelled by revision
"$bin" report "$tmp/h/r6.json" --history "$tmp/h" --out "$tmp/rep" >/dev/null 2>&1 || true
grep -q "set xtics ('c100000000'" "$tmp/rep/chart7-history.gp" ||
    bad "history chart: $(grep xtics "$tmp/rep/chart7-history.gp" | head -1)"

[ "$fail" -eq 0 ] && echo "history: ok" || { echo "history: $fail failure(s)"; exit 1; }
