#!/usr/bin/env bash
# The alert rules and the dashboard against a real server (CTest deploy.monitoring):
#   tests/deploy/monitoring_test.sh LIPSYNC_BINARY
# promtool checks and unit-tests deploy/prometheus/alerts.yaml; then a `lipsync serve` on
# loopback gets a little of every kind of traffic (a unary call, an HTTP session that speaks and
# is interrupted), and every metric, label and label value the rules and the dashboard's queries
# name must be on its /metrics. A renamed metric otherwise shows only as an empty panel or an
# alert that never fires.
set -euo pipefail
lipsync=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
alerts=$root/deploy/prometheus/alerts.yaml
dashboard=$root/deploy/grafana/lipsync.json
speech=$root/assets/demo_speech.wav
promtool=${PROMTOOL:-promtool}
# PyYAML reads the rules: the python3 on PATH, or Debian's (python3-yaml).
py=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import yaml' 2>/dev/null; then py=$p; break; fi
done
[[ -n $py ]] || { echo "monitoring_test: needs PyYAML (Debian's python3-yaml)" >&2; exit 1; }
work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then
    kill -INT "$pid" 2>/dev/null || true  # SIGINT stops at once; SIGTERM would drain
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "monitoring_test: $*" >&2; exit 1; }

"$promtool" check rules "$alerts"
"$promtool" test rules "$root/deploy/prometheus/alerts_test.yaml"

: >"$work/serve.out"  # there before the loop below reads it
LIPSYNC_CACHE_DIR="$work/cache" "$lipsync" serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 \
  >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
http=
grpc=
for _ in $(seq 300); do
  http=$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$work/serve.out")
  grpc=$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/serve.out")
  [[ -n $http ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n $http ]] || { cat "$work/serve.err" >&2; fail "the server printed no ports"; }
url=http://127.0.0.1:$http
ready=
for _ in $(seq 300); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/readyz") == 200 ]] && { ready=1; break; }
  sleep 0.1
done
[[ -n $ready ]] || { cat "$work/serve.err" >&2; fail "/readyz never answered 200"; }

# Traffic: the stage histograms and lipsync_requests_total appear with a unary call, the live
# and per-model series with a session that speaks; its interrupt fills the interrupt histogram.
"$lipsync" loadtest --target "127.0.0.1:$grpc" --requests 2 --concurrency 1 --batch 25 \
  >"$work/loadtest.json"
grep -q '"completed":2' "$work/loadtest.json" || { cat "$work/loadtest.json" >&2; fail "loadtest"; }
session=$(curl -sf --max-time 10 -X POST "$url/v1/sessions" -d '{}' |
  "$py" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -sf --max-time 30 -o /dev/null -X POST -H 'Content-Type: audio/wav' \
  --data-binary "@$speech" "$url/v1/sessions/$session/speech"
speaking=
for _ in $(seq 100); do  # the demo model shows speech about 0.5 s after it arrives
  state=$(curl -sf --max-time 2 "$url/v1/sessions/$session" || true)
  if [[ $state == *'"state":"speaking"'* ]]; then
    speaking=1
    break
  fi
  sleep 0.1
done
[[ -n $speaking ]] || fail "session $session never spoke"
sleep 0.3
curl -sf --max-time 10 -o /dev/null -X POST "$url/v1/sessions/$session/interrupt"
sleep 0.3  # its playback_finished is emitted on the next tick
curl -sf --max-time 10 -o /dev/null -X DELETE "$url/v1/sessions/$session"
curl -sf --max-time 10 "$url/metrics" >"$work/metrics.txt"

PROMTOOL=$promtool "$py" - "$alerts" "$dashboard" "$work/metrics.txt" <<'EOF'
"""Every metric, label and literal label value the rules and the dashboard use is on /metrics."""
import json
import os
import re
import subprocess
import sys

import yaml

alerts_path, dashboard_path, metrics_path = sys.argv[1:]
errors = []

# The scrape: each family's type, and the labels of each sample name.
types, samples = {}, {}
for line in open(metrics_path):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        types[m.group(1)] = m.group(2)
        continue
    m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$", line.strip())
    if m:
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.setdefault(m.group(1), []).append(labels)

SUFFIXES = {"_bucket": ("histogram",), "_sum": ("histogram", "summary"),
            "_count": ("histogram", "summary")}


def family_ok(name):
    """Whether NAME is a sample name the scrape's types allow (a histogram's _bucket, ...)."""
    if types.get(name) in ("counter", "gauge", "untyped"):
        return True
    for suffix, kinds in SUFFIXES.items():
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in kinds:
            return True
    return False


# Labels Prometheus adds at the scrape, and PromQL words that are not metric names.
TARGET_LABELS = {"job", "instance"}
CLAUSES = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "sum", "min", "max",
            "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
            "quantile"}  # the aggregations: `sum by (x) (...)` puts no "(" after the name
TOKEN = re.compile(r"""\s+|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^}]*\}|\[[^\]]*\]"""
                   r"""|\$\{?\w+\}?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*|[a-zA-Z_:][\w:]*|.""")


def parse(expr):
    """[(metric, [(label, op, value)])] and the labels of by/without/on/ignoring clauses."""
    tokens = [t for t in TOKEN.findall(expr) if not t.isspace()]
    selectors, grouping = [], set()
    i = 0
    while i < len(tokens):
        t = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in CLAUSES and after == "(":
            j = tokens.index(")", i)
            grouping.update(x for x in tokens[i + 2 : j] if x != ",")
            i = j + 1
            continue
        if re.fullmatch(r"[a-zA-Z_:][\w:]*", t) and after != "(" and t not in KEYWORDS:
            matchers = []
            if after.startswith("{"):
                matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', after)
                i += 1
            selectors.append((t, matchers))
        i += 1
    return selectors, grouping


def check(where, expr, extra_labels=()):
    selectors, grouping = parse(expr)
    if not selectors:
        errors.append(f"{where}: no metric found in {expr!r}")
    seen_labels = set(TARGET_LABELS)
    for name, matchers in selectors:
        if not family_ok(name):
            errors.append(f"{where}: {name} is not on /metrics")
            continue
        rows = samples.get(name, [])
        if not rows:
            errors.append(f"{where}: {name} has no samples after the traffic")
            continue
        labels = {k for r in rows for k in r}
        seen_labels |= labels
        for label, op, value in matchers:
            if label in TARGET_LABELS:
                continue
            if label not in labels:
                errors.append(f"{where}: {name} has no label {label}")
                continue
            # A literal value, or a plain alternation of them, must be one the scrape has.
            if "$" in value or op not in ("=", "=~"):
                continue
            if op == "=~" and not re.fullmatch(r"[\w.+-]+(\|[\w.+-]+)*", value):
                continue
            have = {r.get(label) for r in rows}
            for v in value.split("|") if op == "=~" else [value]:
                if v not in have:
                    errors.append(f"{where}: {name}{{{label}={v!r}}} is not on /metrics "
                                  f"(it has {sorted(x for x in have if x)})")
    for label in set(grouping) | set(extra_labels):
        if label not in seen_labels:
            errors.append(f"{where}: no metric of {expr!r} has the label {label}")


# The rules: every one well formed, every expression checked.
rules = [r for g in yaml.safe_load(open(alerts_path))["groups"] for r in g["rules"]]
for rule in rules:
    where = f"alerts.yaml {rule.get('alert')}"
    if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
        errors.append(f"{where}: severity is not warning or critical")
    if not {"summary", "description"} <= set(rule.get("annotations", {})):
        errors.append(f"{where}: needs summary and description annotations")
    if "for" not in rule:
        errors.append(f"{where}: no for:")
    check(where, rule["expr"])

# The dashboard: unique panel ids, a query in every panel, the template variables' queries.
dash = json.load(open(dashboard_path))
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    errors.append("lipsync.json: panel ids repeat")
names = {v["name"] for v in dash["templating"]["list"]}
if not {"instance", "datasource"} <= names:
    errors.append("lipsync.json: needs the datasource and instance template variables")
queries = 0
for p in dash["panels"]:
    if p["type"] == "row":
        continue
    targets = p.get("targets", [])
    if not targets or not all(t.get("expr") for t in targets):
        errors.append(f"lipsync.json panel {p['title']!r}: a target without expr")
    for t in targets:
        if t.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"lipsync.json panel {p['title']!r}: not on the datasource variable")
        check(f"lipsync.json panel {p['title']!r}", t.get("expr", ""))
        queries += 1
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
    if not m:
        errors.append(f"lipsync.json variable {v['name']}: not label_values(metric, label)")
        continue
    check(f"lipsync.json variable {v['name']}", m.group(1), [m.group(2)])

# The dashboard's PromQL must parse: promtool checks it as recording rules, with Grafana's
# variables given values.
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
values = {"$__rate_interval": "5m", "$job": ".*", "$instance": ".*", "$model": ".*"}
with open(sys.argv[3] + ".rules.yaml", "w") as f:
    records = []
    for i, expr in enumerate(exprs):
        for var, value in values.items():
            expr = expr.replace(var, value)
        records.append({"record": f"dashboard:query_{i}", "expr": expr})
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}, f)
check_rules = subprocess.run([os.environ["PROMTOOL"], "check", "rules", f.name],
                             capture_output=True, text=True)
if check_rules.returncode != 0:
    errors.append("lipsync.json: promtool rejects a query:\n" + check_rules.stdout +
                  check_rules.stderr)

for e in errors:
    print("monitoring_test:", e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"monitoring_test: {len(rules)} rules and {queries} dashboard queries match /metrics")
EOF
echo "deploy.monitoring: ok"
