#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Summarise a bench/run output folder: print the table, write
results.json and a PNG plot (gnuplot), and copy both to bench/results/
as latest.json and latest.png."""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def pgbench_stats(out, name):
    """Throughput, latency percentiles and a per-second series from the
    per-transaction logs: client tx latency_us script epoch_s epoch_us."""
    lat, done = [], []
    for path in glob.glob(os.path.join(out, "pgbench-%s.*" % name)):
        if path.endswith(".out"):
            continue
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) < 6 or not p[2].isdigit():  # (a failed or skipped transaction)
                    continue
                lat.append(int(p[2]) / 1000.0)
                done.append(int(p[4]) + int(p[5]) / 1e6)
    if not lat:
        return None
    start = min(d - l / 1000.0 for d, l in zip(done, lat))
    duration = max(done) - start
    lat_sorted = sorted(lat)
    pct = lambda q: lat_sorted[int((len(lat_sorted) - 1) * q)]
    series = {}
    for d, l in zip(done, lat):
        series.setdefault(int(d - start), []).append(l)
    ser = []
    for t in range(int(duration) + 1):
        b = sorted(series.get(t, []))
        ser.append({"t": t, "rps": len(b),
                    "p50_ms": b[int((len(b) - 1) * 0.5)] if b else 0,
                    "p99_ms": b[int((len(b) - 1) * 0.99)] if b else 0})
    return {"requests": len(lat), "duration_s": duration, "throughput": len(lat) / duration,
            "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)},
            "series": ser}


def metrics(path):
    """A /metrics snapshot: {sample: value}."""
    m = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    k, v = line.rsplit(" ", 1)
                    m[k] = float(v)
    return m


def stage_quantiles(out, before, after):
    """p50/p99 (bucket upper bounds) of each latency histogram of the API and
    the worker between two snapshots: where a phase's time went."""
    res = {}
    for svc in ("api", "worker"):
        a = metrics(os.path.join(out, "%s-%s.metrics" % (before, svc))) if before else {}
        b = metrics(os.path.join(out, "%s-%s.metrics" % (after, svc)))
        hists = {}
        for k, v in b.items():
            if "_bucket{le=" in k:
                name, le = k.split("_bucket{le=")
                hists.setdefault(name, []).append((le.strip('"}'), v - a.get(k, 0)))
        for name, buckets in hists.items():
            total = buckets[-1][1]
            if not total:
                continue
            q = {}
            for p in (0.5, 0.9, 0.99, 0.999):  # bounds in seconds, shown in ms
                le = next(le for le, c in buckets if c >= p * total)
                q["p%g" % (p * 100)] = le if le == "+Inf" else "%g" % (float(le) * 1000)
            q["over_100ms"] = round(1 - dict(buckets).get("0.1", total) / total, 4)
            res[name.replace("turnstile_", "")] = q
    return res


def main(out):
    r = {}
    for name in ("hot", "spread"):
        res = load(os.path.join(out, name + ".json"))
        if res:
            res.update(load(os.path.join(out, name + "-extra.json"), {}))
            r[name] = res
        base = pgbench_stats(out, name)
        if base:
            base.update(load(os.path.join(out, "baseline-%s-extra.json" % name), {}))
            r["baseline_" + name] = base
    ing = load(os.path.join(out, "ingress.json"))
    if ing:
        ing.update(load(os.path.join(out, "ingress-extra.json"), {}))
        r["ingress"] = ing
    app = load(os.path.join(out, "apply.json"))
    rounds_path = os.path.join(out, "apply-rounds.jsonl")
    if app and os.path.exists(rounds_path):
        with open(rounds_path) as f:
            rounds = [json.loads(line) for line in f if line.strip()]
        for rd in rounds:
            rd["rate"] = rd["commands"] / rd["seconds"]
            rd["ratio_to_ceiling"] = rd["rate"] / rd["ceiling_rows_per_s"]
        for rd in rounds:
            if rd.get("pg_cpu_s") and rd.get("ceiling_pg_cpu_s"):
                # PostgreSQL's CPU per command against per ceiling row: the
                # work ratio, steadier than the rates on a shared machine
                rd["pg_us_per_command"] = 1e6 * rd["pg_cpu_s"] / rd["commands"]
                rd["pg_us_per_ceiling_row"] = 1e6 * rd["ceiling_pg_cpu_s"] / rd["ceiling_rows"]
                rd["worker_us_per_command"] = 1e6 * rd["worker_cpu_s"] / rd["commands"]
        med = lambda k: statistics.median(rd[k] for rd in rounds)
        app.update({"rounds": rounds, "commands": rounds[0]["commands"],
                    "rate": med("rate"), "ceiling_rows_per_s": med("ceiling_rows_per_s"),
                    "ratio_to_ceiling": med("ratio_to_ceiling"),
                    "worker_peak_rss_kb": max(rd["worker_peak_rss_kb"] for rd in rounds)})
        if all("same_rows_ceiling_per_s" in rd for rd in rounds):
            for rd in rounds:
                rd["ratio_to_same_rows"] = rd["rate"] / rd["same_rows_ceiling_per_s"]
            app.update({k: med(k) for k in ("same_rows_ceiling_per_s", "ratio_to_same_rows")})
        if all("pg_us_per_command" in rd for rd in rounds):
            app.update({k: med(k) for k in ("pg_us_per_command", "pg_us_per_ceiling_row",
                                             "worker_us_per_command")})
        r["apply"] = app
        # the median round's split of the worker's time
        mid = sorted(rounds, key=lambda rd: rd["rate"])[len(rounds) // 2]
        app["worker_split"] = {k: v / mid["seconds"] for k, v in mid.get("worker_seconds", {}).items()
                               if k != "poll"}

    mb = lambda kb: "%.1f" % (kb / 1024.0) if kb else "-"
    rows = []
    half = load(os.path.join(out, "hot-half.json"))
    if half:
        r["hot_half"] = half
        r["hot_half"]["stages"] = stage_quantiles(out, "hot", "hot-half")
    for key, label in (("hot", "turnstile hot event"),
                       ("hot_half", "hot event at half rate"),
                       ("baseline_hot", "row locking, hot event"),
                       ("spread", "turnstile 1,000 events"),
                       ("baseline_spread", "row locking, 1,000 events"),
                       ("ingress", "ingress alone (202)")):
        x = r.get(key)
        if not x:
            continue
        st = x.get("status", {})
        accepted = x.get("registrations_in_db", st.get("202", st.get("201", "-")))
        refused = sum(v for k, v in st.items() if k.startswith("4")) if st else (
            x["requests"] - x.get("registrations_in_db", 0))
        rows.append([label, "%.0f" % x["throughput"], "%.1f" % x["latency_ms"]["p50"],
                     "%.1f" % x["latency_ms"]["p99"], "%.1f" % x["latency_ms"]["max"],
                     str(accepted), str(refused), str(x.get("oversold_events", "-")),
                     mb(x.get("api_peak_rss_kb")), mb(x.get("worker_peak_rss_kb"))])
    head = ["phase", "req/s", "p50 ms", "p99 ms", "max ms", "accepted", "refused", "oversold",
            "api MB", "worker MB"]
    widths = [max(len(str(row[i])) for row in rows + [head]) for i in range(len(head))]
    line = lambda row: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths)))
    if rows:
        print()
        print(line(head))
        print(line(["-" * w for w in widths]))
        for row in rows:
            print(line(row))
    ratios = {}
    for k in ("hot", "spread"):
        if k in r and "baseline_" + k in r:
            ratios[k] = r[k]["throughput"] / r["baseline_" + k]["throughput"]
            print("turnstile / row locking, %s: %.2fx" % (k, ratios[k]))
    for k in ("hot", "spread", "ingress"):
        if k in r and "cpu_us_per_request" in r[k]:
            print("CPU per request, %s: %s" % (k, ", ".join(
                "%s %.0f us" % kv for kv in r[k]["cpu_us_per_request"].items())))
    if "hot_half" in r and r["hot_half"].get("stages"):
        print("\nhot event at half rate, the services' own histograms (bucket bounds, ms):")
        for name, q in sorted(r["hot_half"]["stages"].items()):
            print("  %-34s p50 <= %-5s p99 <= %-5s p99.9 <= %-5s over 100 ms: %.2f%%"
                  % (name, q["p50"], q["p99"], q["p99.9"], 100 * q["over_100ms"]))
    if "apply" in r:
        a = r["apply"]
        print("worker apply (median of %d rounds, each against the ceiling run after it): "
              "%.0f commands/s; ceiling %.0f rows/s; ratio %.2f (rounds: %s); "
              "worker peak RSS %s MB" % (len(a["rounds"]), a["rate"], a["ceiling_rows_per_s"],
                                         a["ratio_to_ceiling"],
                                         " ".join("%.2f" % rd["ratio_to_ceiling"]
                                                  for rd in a["rounds"]),
                                         mb(a["worker_peak_rss_kb"])))
        if "same_rows_ceiling_per_s" in a:
            print("the same rows as the worker writes (user, registration, processed command), "
                  "batched: %.0f registrations/s; the worker at %.2f of that"
                  % (a["same_rows_ceiling_per_s"], a["ratio_to_same_rows"]))
        if "pg_us_per_command" in a:
            print("CPU per command (median): PostgreSQL %.1f us (ceiling: %.1f us per row, x%.1f), "
                  "worker %.1f us" % (a["pg_us_per_command"], a["pg_us_per_ceiling_row"],
                                      a["pg_us_per_command"] / a["pg_us_per_ceiling_row"],
                                      a["worker_us_per_command"]))
        if a.get("worker_split"):
            print("worker's time while draining (median round): %s" % ", ".join(
                "%s %.0f%%" % (k, 100 * v) for k, v in sorted(a["worker_split"].items())))
    r["ratios"] = ratios
    r["machine"] = {"cores": os.cpu_count(), "uname": " ".join(os.uname())}
    cv = curve(out)
    if cv:
        cv["machine"] = r["machine"]
        r["curve"] = cv
        print_curve(cv)
        plot_curve(out, cv)

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(r, f, indent=1)
    plot(out, r)
    # only a run of every phase stands for the project's figures
    complete = all(k in r for k in ("hot", "spread", "baseline_hot", "baseline_spread",
                                    "apply", "ingress"))
    if complete:
        os.makedirs("bench/results", exist_ok=True)
        shutil.copy(os.path.join(out, "results.json"), "bench/results/latest.json")
        if os.path.exists(os.path.join(out, "bench.png")):
            shutil.copy(os.path.join(out, "bench.png"), "bench/results/latest.png")
    if rows:
        print("\nresults: %s/results.json, plot: %s/bench.png%s"
              % (out, out, " (copied to bench/results/)" if complete else ""))
    if cv:
        with open(os.path.join(out, "curve.json"), "w") as f:
            json.dump(cv, f, indent=1)
        # a curve with every system at every point (refusals included)
        done = all(len(cv["points"][c]) == len(CURVE_SYSTEMS) for c in cv["points"]) \
            and len(cv["idle"]) == len(CURVE_SYSTEMS)
        names = ["curve.json", "curve-throughput.png", "curve-p99.png"]
        if done:
            os.makedirs("bench/results", exist_ok=True)
            for name in names:
                if os.path.exists(os.path.join(out, name)):
                    shutil.copy(os.path.join(out, name), os.path.join("bench/results", name))
        print("results: %s%s" % (", ".join(os.path.join(out, n) for n in names),
                                 " (copied to bench/results/)" if done else ""))


CURVE_SYSTEMS = ["turnstile", "seed-direct", "seed-pool", "counter-direct", "counter-pool"]


def curve(out):
    """The curve phase's points: {"points": {clients: {system: point}},
    "idle": {system: point}, "ratios": ...}; a point is its throughput and
    latency percentiles, or {"refused": why}."""
    setup = load(os.path.join(out, "curve-setup.json"))
    if not setup:
        return None
    titles = {"turnstile": "turnstile", "seed-direct": "seed, direct",
              "seed-pool": "seed, pool of %d" % setup["pool"],
              "counter-direct": "counter, direct",
              "counter-pool": "counter, pool of %d" % setup["pool"]}
    cv = dict(setup, titles=titles, points={str(c): {} for c in setup["clients"]}, idle={})
    for path in sorted(glob.glob(os.path.join(out, "*-extra.json"))):
        name = os.path.basename(path)[:-len("-extra.json")]
        if not name.startswith(("curve-", "idle-")):
            continue
        x = load(path)
        if x.get("refused"):
            pt = {"refused": x["refused"]}
        else:
            if x["system"] == "turnstile":
                pt = load(os.path.join(out, name + ".json"))
            else:
                pt = pgbench_stats(out, name)
            if not pt:
                continue
            pt.pop("series", None)
            pt = {k: pt[k] for k in ("requests", "duration_s", "throughput", "latency_ms",
                                     "status", "errors") if k in pt}
            pt.update({k: x[k] for k in ("capacity", "cpu_us_per_request", "registrations_in_db",
                                         "oversold_events", "seats_without_row") if k in x})
        if name.startswith("idle-"):
            cv["idle"][x["system"]] = pt
        else:
            cv["points"].setdefault(str(x["clients"]), {})[x["system"]] = pt
    # turnstile against the better configuration of each design, per point
    cv["ratios"] = {}
    for c, pts in cv["points"].items():
        t = pts.get("turnstile", {}).get("throughput")
        rc = {}
        for design in ("seed", "counter"):
            best = max([pts.get("%s-%s" % (design, via), {}).get("throughput", 0)
                        for via in ("direct", "pool")])
            if t and best:
                rc[design] = t / best
        cv["ratios"][c] = rc
    return cv


def print_curve(cv):
    systems = [s for s in CURVE_SYSTEMS
               if any(s in pts for pts in cv["points"].values())]

    def cell(pt):
        if pt is None:
            return "-"
        if "refused" in pt:
            return "refused"
        return "%.0f/s %.1f" % (pt["throughput"], pt["latency_ms"]["p99"])

    head = ["clients"] + [cv["titles"][s] for s in systems] + ["x seed", "x counter"]
    rows = []
    for c, pts in cv["points"].items():
        rc = cv["ratios"].get(c, {})
        rows.append([c] + [cell(pts.get(s)) for s in systems]
                    + ["%.2fx" % rc["seed"] if "seed" in rc else "-",
                       "%.2fx" % rc["counter"] if "counter" in rc else "-"])
    print("\ncurve, one hot event: registrations/s and p99 ms at each concurrency "
          "(x seed, x counter: turnstile / the better of direct and pooled)")
    table(head, rows)
    refused = sorted({pt["refused"] for pts in cv["points"].values() for pt in pts.values()
                      if "refused" in pt})
    if refused:
        print("refused: %s" % "; ".join(refused))
    over = ["%s at %s" % (s, c) for c, pts in cv["points"].items() for s, pt in pts.items()
            if pt.get("oversold_events")]
    over += ["%s idle" % s for s, pt in cv["idle"].items() if pt.get("oversold_events")]
    print("oversold (registrations > capacity): %s"
          % (", ".join(over) if over else "none, at every point"))
    lost = ["%s at %s: %d" % (s, c, pt["seats_without_row"]) for c, pts in cv["points"].items()
            for s, pt in pts.items() if pt.get("seats_without_row")]
    if lost:
        print("counter seats taken without a row (concurrent duplicates): %s" % ", ".join(lost))
    for c, pts in cv["points"].items():
        cpu = []
        for s in systems:
            u = pts.get(s, {}).get("cpu_us_per_request")
            if u:
                cpu.append("%s %s" % (cv["titles"][s], " + ".join(
                    "%s %.0f" % kv for kv in u.items())))
        if cpu:
            print("CPU us per request at %s clients: %s" % (c, "; ".join(cpu)))
    if cv["idle"]:
        print("\nidle: %d registrations one after the other, 1 client" % cv["idle_n"])
        rows = []
        for s in CURVE_SYSTEMS:
            pt = cv["idle"].get(s)
            if pt and "latency_ms" in pt:
                rows.append([cv["titles"][s], "%.2f" % pt["latency_ms"]["p50"],
                             "%.2f" % pt["latency_ms"]["p99"], "%.0f" % pt["throughput"]])
        table(["system", "p50 ms", "p99 ms", "req/s"], rows)


def table(head, rows):
    widths = [max(len(str(row[i])) for row in rows + [head]) for i in range(len(head))]

    def line(row):
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))
    print(line(head))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def plot_curve(out, cv):
    """Throughput and p99 against concurrency, a line per system (refused
    points left out), to curve-throughput.png and curve-p99.png."""
    if not shutil.which("gnuplot"):
        return
    clients = sorted(cv["points"], key=int)
    with open(os.path.join(out, "curve.dat"), "w") as f:
        f.write("# clients, then throughput and p99 ms of: %s\n" % " ".join(CURVE_SYSTEMS))
        for c in clients:
            cols = [c]
            for s in CURVE_SYSTEMS:
                pt = cv["points"][c].get(s, {})
                if "throughput" in pt:
                    cols += ["%.1f" % pt["throughput"], "%.2f" % pt["latency_ms"]["p99"]]
                else:
                    cols += ["-", "-"]
            f.write(" ".join(cols) + "\n")

    # a colour per design, pooled runs dashed
    style = {"turnstile": "lc rgb '#5e3c99' dt 1", "seed-direct": "lc rgb '#d7301f' dt 1",
             "seed-pool": "lc rgb '#d7301f' dt 2", "counter-direct": "lc rgb '#0570b0' dt 1",
             "counter-pool": "lc rgb '#0570b0' dt 2"}

    def plots(offset):
        return ", ".join("'curve.dat' using 1:%d with linespoints lw 2 pt 7 %s title '%s'"
                         % (2 + 2 * i + offset, style[s], cv["titles"][s])
                         for i, s in enumerate(CURVE_SYSTEMS))
    refused = ["%s at %s" % (s.replace("-", " "), c) for c in clients
               for s in CURVE_SYSTEMS if "refused" in cv["points"][c].get(s, {})]
    note = "\\nrefused (max_connections=%s): %s" % (cv["max_connections"], ", ".join(refused)) \
        if refused else ""
    xtics = ", ".join("'%s' %s" % (c, c) for c in clients)
    common = """set terminal pngcairo size 1000,650 noenhanced
set datafile missing '-'
set grid
set key outside right
set logscale x 2
set xtics (%s)
set xlabel 'concurrent clients'
""" % xtics
    script = common + """set output 'curve-throughput.png'
set title "registrations/s against concurrency, one hot event%s"
set ylabel 'registrations/s'
set yrange [0:*]
plot %s
set output 'curve-p99.png'
set title "p99 latency against concurrency, one hot event%s"
set ylabel 'p99 latency (ms)'
set logscale y
set yrange [*:*]
plot %s
""" % (note, plots(0), note, plots(1))
    with open(os.path.join(out, "curve.gp"), "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", "curve.gp"], cwd=out, check=False)


def plot(out, r):
    series = [(k, r[k]["series"]) for k in ("hot", "baseline_hot", "spread", "baseline_spread")
              if k in r and "series" in r[k]]
    if not series or not shutil.which("gnuplot"):
        return
    for k, s in series:
        with open(os.path.join(out, "series-%s.dat" % k), "w") as f:
            for p in s:
                f.write("%d %d %.2f %.2f\n" % (p["t"], p["rps"], p["p50_ms"], p["p99_ms"]))
    titles = {"hot": "turnstile, hot event", "baseline_hot": "row locking, hot event",
              "spread": "turnstile, 1,000 events", "baseline_spread": "row locking, 1,000 events"}
    plots1 = ", ".join("'series-%s.dat' using 1:2 with linespoints title '%s'" % (k, titles[k])
                       for k, _ in series)
    plots2 = ", ".join("'series-%s.dat' using 1:4 with linespoints title '%s'" % (k, titles[k])
                       for k, _ in series)
    script = """
set terminal pngcairo size 1100,800 noenhanced
set output 'bench.png'
set multiplot layout 2,1 title 'turnstile vs. row locking: registrations (%d clients)'
set grid
set key outside right
set ylabel 'registrations/s'
set xlabel 'seconds'
plot %s
set ylabel 'p99 latency (ms)'
set logscale y
plot %s
unset multiplot
""" % (r.get("hot", {}).get("concurrency", 0), plots1, plots2)
    with open(os.path.join(out, "plot.gp"), "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", "plot.gp"], cwd=out, check=False)


if __name__ == "__main__":
    main(sys.argv[1])
