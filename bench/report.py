#!/usr/bin/env python3
"""Rewrites the generated tables of BENCHMARKS.md from a bench/run.sh results directory.

    bench/report.py RESULTS_DIR BENCHMARKS.md

RESULTS_DIR holds machine.json, commands.tsv (name <TAB> command) and one JSON object per run
in NAME.RUN.json, as written by bench/run.sh. Each table sits between
`<!-- bench:KEY:begin -->` and `<!-- bench:KEY:end -->`; everything outside the markers is
left alone. Every figure is the median over the runs, with the spread (min-max) beside it.
A measurement without results reads "not measured in this run".
"""

import json
import os
import re
import statistics
import sys

SPARK = 500_000
FLINK = 700_000


def load_runs(results, name):
    runs = []
    i = 1
    while True:
        path = os.path.join(results, f"{name}.{i}.json")
        if not os.path.exists(path):
            break
        try:
            with open(path) as f:
                text = f.read().strip().splitlines()
            if text:
                runs.append(json.loads(text[-1]))
        except (OSError, ValueError):
            pass
        i += 1
    return runs


def get(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def values(runs, path):
    return [v for v in (get(r, path) for r in runs) if isinstance(v, (int, float))]


def fmt_num(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def med(runs, path, digits=0, unit=""):
    """'median (min-max)' over the runs."""
    vs = values(runs, path)
    if not vs:
        return "not measured"
    m = statistics.median(vs)
    text = fmt_num(m, digits) + unit
    if len(vs) > 1:
        text += f" ({fmt_num(min(vs), digits)}-{fmt_num(max(vs), digits)})"
    return text


def median_value(runs, path):
    vs = values(runs, path)
    return statistics.median(vs) if vs else None


def commands(results):
    out = {}
    path = os.path.join(results, "commands.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                name, _, cmd = line.rstrip("\n").partition("\t")
                out[name] = cmd
    return out


def cmd(cmds, name):
    c = cmds.get(name)
    if not c:
        return "-"
    # `<target dir>/release/rtdash-loadgen` -> `rtdash-loadgen`
    c = re.sub(r"\S*/release/rtdash-loadgen", "rtdash-loadgen", c)
    return f"`{c}`"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def section_machine(results, cmds):
    try:
        with open(os.path.join(results, "machine.json")) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return "not measured in this run"
    rows = [[k, v] for k, v in m.items()]
    return table(["what", "value"], rows)


def section_peer(results, cmds):
    inproc = load_runs(results, "peer_inprocess")
    exact = load_runs(results, "peer_inprocess_exact")
    http = load_runs(results, "peer_http")
    rows = []
    for runs, name, label in [
        (inproc, "peer_inprocess", "rtdash in-process (`Aggregator`, 2 worker threads, events generated in-process; with the built-in `events` metric: 5 series per event)"),
        (exact, "peer_inprocess_exact", "rtdash in-process, the peers' aggregation only (`--no-builtin-events`: 1 series per event)"),
    ]:
        if not runs:
            continue
        m = median_value(runs, "events_per_sec")
        rows.append([
            label, med(runs, "events_per_sec"), med(runs, "events_per_cpu_sec"), len(runs),
            f"{m / FLINK:.2f}x" if m else "-", "10x", cmd(cmds, name),
        ])
    m = median_value(http, "accepted_rate")
    rows.append([
        "rtdash through the edge agent (HTTP, JSON batches of 1,000, generator on the same 2 cores)",
        med(http, "accepted_rate"), "-", len(http),
        f"{m / FLINK:.2f}x" if m else "-", "1.4x", cmd(cmds, "peer_http"),
    ])
    rows.append(["Spark 4.0.5 Structured Streaming (`local[2]`, micro-batches ~4 s)", "500,000", "-", "-", f"{SPARK / FLINK:.2f}x", "-", "shared/bench/peer-workload.md"])
    rows.append(["Flink 2.3.0 (parallelism 2, exact distinct, no p99)", "700,000", "-", "-", "1.00x", "-", "shared/bench/peer-workload.md"])
    text = table(["engine", "events/s: median (min-max)", "events per CPU-second", "runs", "vs Flink", "target", "command"], rows)
    if inproc:
        r = inproc[-1]
        text += (
            f"\n\nLast in-process run: {r.get('events', 0):,} events in {r.get('seconds', 0):.1f} s; "
            f"{r.get('windows_emitted', 0)} windows emitted with at most {r.get('max_groups_per_window', 0)} groups; "
            f"{r.get('late_generated', 0):,} late events generated, {r.get('late_dropped', 0):,} dropped "
            f"(window already emitted); every other event is counted in the output "
            f"({r.get('events_emitted', 0):,} + {r.get('late_dropped', 0):,} = {r.get('events_emitted', 0) + r.get('late_dropped', 0):,})."
        )
    return text


def section_ingest(results, cmds):
    rows = []
    for name, label in [
        ("ingest_max", "closed loop, 8 requests in flight (capacity)"),
        ("ingest_100k", "open loop at 100,000 events/s"),
    ]:
        runs = load_runs(results, name)
        rows.append([
            label, len(runs), med(runs, "accepted_rate"),
            med(runs, "latency.p50_ms", 1), med(runs, "latency.p99_ms", 1),
            med(runs, "max_lag_ms"),
            med(runs, "overloaded_requests"),
            cmd(cmds, name),
        ])
    return table(["run", "runs", "accepted events/s", "request p50 ms", "request p99 ms",
                  "max lag ms", "429/503 answers", "command"], rows)


def section_aggregator(results, cmds):
    rows = []
    for name, label in [
        ("ingest_max", "during the closed-loop ingest runs"),
        ("ingest_100k", "during the 100,000 events/s runs"),
    ]:
        runs = load_runs(results, "aggregator_" + name)
        if runs:
            rows.append([label, len(runs), med(runs, "partials_merged_per_sec"),
                         med(runs, "batches_applied_per_sec"), med(runs, "lag_messages_at_end"),
                         cmd(cmds, name)])
    if not rows:
        return "not measured in this run"
    return table(["while", "runs", "partial entries merged/s", "partial batches applied/s",
                  "consumer lag at the end (messages)", "load command"], rows)


def e2e_order(name):
    """(rate, viewers) of `e2e_<rate>[_<viewers>v]`, for sorting."""
    m = re.match(r"e2e_(\d+)(?:_(\d+)v)?$", name)
    return (int(m.group(1)), int(m.group(2) or 1)) if m else (0, 0)


def section_e2e(results, cmds):
    rows = []
    names = {f.split(".")[0] for f in os.listdir(results) if f.startswith("e2e_") and f.endswith(".json")}
    for name in sorted(names, key=e2e_order):
        rate, viewers = e2e_order(name)
        runs = load_runs(results, name)
        load = load_runs(results, name.replace("e2e_", "e2eload_", 1))
        if viewers > 1:
            # `fanout --agent`: every marker timed at every viewer.
            for run in runs:
                if isinstance(run.get("expected_deliveries"), (int, float)) and isinstance(run.get("deliveries"), (int, float)):
                    run["missing"] = run["expected_deliveries"] - run["deliveries"]
            stat = "delay"
        else:
            stat = "latency"
        rows.append([
            f"{rate:,} events/s", f"{viewers:,}", len(runs),
            med(runs, f"{stat}.p50_ms"), med(runs, f"{stat}.p99_ms"), med(runs, f"{stat}.max_ms"),
            med(runs, "missing"),
            med(load, "accepted_rate"), med(load, "final_lag_ms"),
            cmd(cmds, name),
        ])
    if not rows:
        return "not measured in this run"
    text = table(["background load", "viewers", "runs", "p50 ms", "p99 ms", "max ms", "markers missing (deliveries with viewers > 1)",
                  "load accepted events/s", "load lag at end ms", "probe command"], rows)
    sweep = os.path.join(results, "sweep.txt")
    if os.path.exists(sweep):
        with open(sweep) as f:
            extra = f.read().strip()
        if extra:
            text += "\n\n" + extra
    return text


def section_fanout(results, cmds):
    rows = []
    for name, label in [("fanout_1000", "1,000 viewers"), ("fanout_10000", "10,000 viewers"),
                        ("fanout_10000_load", "10,000 viewers + 100,000 events/s load")]:
        runs = load_runs(results, name)
        if not runs:
            continue
        rows.append([
            label, len(runs), med(runs, "connected"), med(runs, "connect_seconds", 1),
            med(runs, "deliveries"), med(runs, "expected_deliveries"),
            med(runs, "delay.p50_ms"), med(runs, "delay.p99_ms"), med(runs, "delay.max_ms"),
            med(runs, "gateway_rss_before_mib"), med(runs, "gateway_rss_connected_mib"),
            cmd(cmds, name),
        ])
    if not rows:
        return "not measured in this run"
    text = table(["viewers", "runs", "connected", "connect s", "deliveries", "expected",
                  "delay p50 ms", "delay p99 ms", "delay max ms", "gateway RSS before MiB",
                  "gateway RSS connected MiB", "command"], rows)
    q = load_runs(results, "query")
    if q:
        text += "\n\n" + table(["metric query", "runs", "requests/s", "p50 ms", "p99 ms", "max ms", "command"], [[
            "GET /v1/metrics/events (last hour)", len(q), med(q, "requests_per_sec"),
            med(q, "latency.p50_ms", 1), med(q, "latency.p99_ms", 1), med(q, "latency.max_ms", 1),
            cmd(cmds, "query")]])
    return text


SECTIONS = {
    "machine": section_machine,
    "peer": section_peer,
    "ingest": section_ingest,
    "aggregator": section_aggregator,
    "e2e": section_e2e,
    "fanout": section_fanout,
}


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    results, target = sys.argv[1], sys.argv[2]
    with open(target) as f:
        doc = f.read()
    cmds = commands(results)
    for key, build in SECTIONS.items():
        begin, end = f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(doc):
            print(f"report.py: no {begin} marker in {target}; skipped", file=sys.stderr)
            continue
        body = build(results, cmds)
        doc = pattern.sub(lambda _: f"{begin}\n{body}\n{end}", doc)
    with open(target, "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
