#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks deploy/'s Prometheus alert rules and Grafana dashboard against the
real /metrics of a running API and worker (integration.ops scrapes them and
runs this; Debian's python3 with python3-yaml).

  tests/tools/check_deploy.py --api API.metrics --worker WORKER.metrics FILE...

FILE is an alert rules file (.yml, .yaml) or a dashboard (.json). Each is
checked for its shape (what Prometheus and Grafana need to load it), and
every PromQL expression in it for what it names: each turnstile_* metric
must be a family (or a histogram's _bucket, _sum, _count) of one of the two
pages, each label a selector matches on or an aggregation keeps must be one
that metric's samples carry (or a label Prometheus adds: job, instance).
Exits 1, saying what is wrong, if anything is.
"""
import argparse
import json
import re
import sys

import yaml

TARGET_LABELS = {"job", "instance"}  # added by Prometheus when it scrapes
METRIC = re.compile(r"\bturnstile_[a-zA-Z0-9_]+\b")
SELECTOR = re.compile(r"\b(turnstile_[a-zA-Z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
DURATION = re.compile(r"^(\d+[smhdwy])+$")


def parse_page(path):
    """{metric name: set of label names} of a Prometheus text page, every
    name a sample may have (a histogram's _bucket, _sum and _count too)."""
    names, types = {}, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind
                names.setdefault(name, set())
                if kind == "histogram":
                    for suffix in ("_bucket", "_sum", "_count"):
                        names.setdefault(name + suffix, set())
            elif line and not line.startswith("#"):
                m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
                if not m:
                    raise SystemExit("%s: not a sample: %r" % (path, line))
                labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
                names.setdefault(m.group(1), set()).update(labels)
    for name, kind in types.items():  # a histogram family matches on its buckets' labels
        if kind == "histogram":
            names[name] |= names[name + "_bucket"] - {"le"}
    return names


def check_expr(expr, where, known, problems):
    """Every metric and label of one PromQL expression; returns the metrics."""
    found = set(METRIC.findall(expr))
    if not found:
        problems.append("%s: names no turnstile_* metric: %s" % (where, expr))
    for name in sorted(found):
        if name not in known:
            problems.append("%s: %s is in neither service's /metrics" % (where, name))
    for name, matchers in SELECTOR.findall(expr):
        for label in MATCHER.findall(matchers):
            if name in known and label not in known[name] | TARGET_LABELS:
                problems.append("%s: %s has no label %s" % (where, name, label))
    carried = set(TARGET_LABELS)
    for name in found:
        carried |= known.get(name, set())
    for group in GROUPING.findall(expr):
        for label in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", group):
            if label not in carried:
                problems.append("%s: no metric of it has the label %s it groups by"
                                % (where, label))
    return found


def check_rules(path, known, problems):
    with open(path) as f:
        doc = yaml.safe_load(f)
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        problems.append("%s: no groups" % path)
        return 0, set()
    alerts, names = 0, set()
    for g in groups:
        if not isinstance(g.get("name"), str) or not isinstance(g.get("rules"), list):
            problems.append("%s: a group needs a name and rules" % path)
            continue
        for r in g["rules"]:
            where = "%s: %s" % (path, r.get("alert", r.get("record", "?")))
            if not isinstance(r.get("alert"), str) or not isinstance(r.get("expr"), str):
                problems.append("%s: an alert rule needs alert and expr" % where)
                continue
            if r["alert"] in names:
                problems.append("%s: alert named twice" % where)
            alerts += 1
            extra = set(r) - {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if extra:
                problems.append("%s: unknown keys %s" % (where, sorted(extra)))
            if "for" in r and not DURATION.match(str(r["for"])):
                problems.append("%s: for: %r is not a duration" % (where, r["for"]))
            if not (r.get("labels") or {}).get("severity"):
                problems.append("%s: no severity label" % where)
            notes = r.get("annotations") or {}
            if not notes.get("summary") or not notes.get("description"):
                problems.append("%s: needs a summary and a description" % where)
            names |= check_expr(r["expr"], where, known, problems)
    return alerts, names


def panels_of(panels):
    for p in panels:
        yield p
        yield from panels_of(p.get("panels") or [])  # a collapsed row holds its panels


def check_dashboard(path, known, problems):
    with open(path) as f:
        doc = json.load(f)
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in doc:
            problems.append("%s: no %s" % (path, key))
    count, names, ids = 0, set(), set()
    for p in panels_of(doc.get("panels") or []):
        where = "%s: panel %r" % (path, p.get("title"))
        if p.get("id") in ids:
            problems.append("%s: id %r used twice" % (where, p.get("id")))
        ids.add(p.get("id"))
        if not p.get("title") or not p.get("type") or "gridPos" not in p:
            problems.append("%s: needs a title, a type and a gridPos" % where)
        if p.get("type") == "row":
            continue
        count += 1
        targets = p.get("targets") or []
        if not targets:
            problems.append("%s: no targets" % where)
        for t in targets:
            if not isinstance(t.get("expr"), str) or not t.get("refId"):
                problems.append("%s: a target needs an expr and a refId" % where)
                continue
            names |= check_expr(t["expr"], where, known, problems)
    for v in (doc.get("templating") or {}).get("list", []):
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if v.get("type") == "query" and isinstance(query, str):
            names |= check_expr(query, "%s: variable %s" % (path, v.get("name")), known,
                                problems)
    return count, names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--api", required=True, help="the API's /metrics, saved")
    ap.add_argument("--worker", required=True, help="the worker's /metrics, saved")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    known = parse_page(args.api)
    for name, labels in parse_page(args.worker).items():
        known.setdefault(name, set()).update(labels)
    problems = []
    for path in args.files:
        if path.endswith((".yml", ".yaml")):
            n, names = check_rules(path, known, problems)
            what = "alert rules"
        else:
            n, names = check_dashboard(path, known, problems)
            what = "panels"
        print("%s: %d %s, %d metrics named" % (path, n, what, len(names)))
        if n == 0:
            problems.append("%s: no %s" % (path, what))
    for p in problems:
        print("check_deploy: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
