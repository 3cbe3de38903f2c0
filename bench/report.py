#!/usr/bin/env python3
"""Rewrites the generated tables of BENCHMARKS.md from a bench/run.sh results directory.

    bench/report.py RESULTS_DIR BENCHMARKS.md [--sections KEY,KEY...]

RESULTS_DIR holds machine.json, commands.tsv (name <TAB> command) and one JSON object per run
in NAME.RUN.json, as written by bench/run.sh. Each table sits between
`<!-- bench:KEY:begin -->` and `<!-- bench:KEY:end -->`; everything outside the markers is
left alone. Every figure is the median over the runs, with the spread (min-max) beside it.
A measurement without results reads "not measured in this run". With --sections only
those tables are rewritten (the partial runs of bench/run.sh: --peers, --fanout-peer,
--no-stack); each of them names its run's commit and load average.
"""

import json
import os
import re
import statistics
import sys

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
    c = re.sub(r"\S*/(?:release|debug)/rtdash-loadgen", "rtdash-loadgen", c)
    # `<cache>/peers-venv/<versions>/flink/bin/python` -> `<peers venv>/flink/bin/python`
    c = re.sub(r"\S*/peers-venv/[^/\s]+/(flink|spark)/bin/python", r"<peers venv>/\1/bin/python", c)
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
    text = table(["what", "value"], rows)
    loads = load_avgs(results, None)
    if loads:
        text += f"\n\nLoad average (1 min) before the runs: {min(loads):.1f}-{max(loads):.1f}."
    warning = busy(m, loads)
    if warning:
        text += f" **{warning}**"
    return text


FLINK_LABEL = "Flink 2.3.0 (PyFlink, Flink SQL, parallelism 2, bounded datagen; exact distinct, no p99): rows / job net runtime"
SPARK_LABEL = "Spark 4.0.5 Structured Streaming (PySpark, `local[2]`, rate source, 5 s trigger; approximate distinct and p99): processed rows/s while a micro-batch runs"
# Targets of issue 19: in-process at least 20x Flink, through the agent over HTTP at least 2x.
TARGET_INPROCESS = 20.0
TARGET_HTTP = 2.0


def load_avgs(results, names):
    """1-minute load averages recorded before the runs of `names` (all runs: None), from loadavg.tsv."""
    out = []
    path = os.path.join(results, "loadavg.tsv")
    if os.path.exists(path):
        with open(path) as f:
            next(f, None)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and (names is None or parts[0] in names):
                    try:
                        out.append(float(parts[2].split()[0]))
                    except (ValueError, IndexError):
                        pass
    return out


def machine(results):
    try:
        with open(os.path.join(results, "machine.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_line(results, names):
    """Where and when these runs were made: commit, date, load averages."""
    m = machine(results)
    loads = load_avgs(results, names)
    text = (f"Run of {m.get('date (UTC)', '?')}, commit {m.get('commit', '?')}, "
            f"`bench/run.sh` mode {m.get('mode', '?')}; load average at the start {m.get('load average at start', '?')}")
    if loads:
        text += f", before each of these runs {min(loads):.1f}-{max(loads):.1f} (1 min)"
    text += "."
    warning = busy(m, loads)
    if warning:
        text += f" **{warning}**"
    return text


# A 1-minute load average above this share of the cores before a run: other work shared them.
BUSY_LOAD_PER_CORE = 0.75


def busy(m, loads):
    """Why these figures are not the quiet-machine figures the targets are judged on, or None."""
    reasons = []
    try:
        cores = float(m.get("cores (nproc)", "0"))
    except ValueError:
        cores = 0.0
    try:
        at_start = float(str(m.get("load average at start", "")).split()[0])
    except (ValueError, IndexError):
        at_start = None
    worst = max(loads + ([at_start] if at_start is not None else []), default=None)
    if cores and worst is not None and worst > BUSY_LOAD_PER_CORE * cores:
        reasons.append(f"the machine was busy (load average up to {worst:.1f} on {cores:.0f} cores)")
    others = str(m.get("rtdash or NATS processes at start", "0")).strip()
    if others not in ("", "0"):
        reasons.append(f"{others} rtdash or NATS processes of another stack were running")
    if "debug build" in str(m.get("mode", "")):
        reasons.append("rtdash ran as a debug build")
    if "sizes overridden" in str(m.get("mode", "")):
        reasons.append("run sizes were overridden (a harness check)")
    if not reasons:
        return None
    return "Not comparable: " + "; ".join(reasons) + ". These are not the figures the targets are judged on."


def engine_rows(results):
    flink = load_runs(results, "peer_flink")
    spark = load_runs(results, "peer_spark")
    return flink, spark


def attempts(results, name):
    """How many runs of `name` were started (loadavg.tsv has a line before each)."""
    path = os.path.join(results, "loadavg.tsv")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split("\t", 1)[0] == name)


def engine_failures(results):
    """A sentence on engine runs that gave no figure, or ''."""
    out = []
    for name, label in [("peer_flink", "Flink"), ("peer_spark", "Spark")]:
        started, done = attempts(results, name), len(load_runs(results, name))
        if started > done:
            out.append(f"{label}: {started - done} of {started} runs gave no figure (their logs: `{name}.<run>.log` in the results directory)")
    return ("\n\n" + "; ".join(out) + ".") if out else ""


def judged(results, names):
    """False when the runs of `names` are not comparable (busy machine, debug build, ...)."""
    return busy(machine(results), load_avgs(results, names)) is None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def section_peer(results, cmds):
    inproc = load_runs(results, "peer_inprocess")
    exact = load_runs(results, "peer_inprocess_exact")
    http = load_runs(results, "peer_http")
    flink, spark = engine_rows(results)
    f = median_value(flink, "events_per_s_net")
    sp = median_value(spark, "median_processed_rows_per_s")
    rows = []
    for runs, name, label, path, target in [
        (inproc, "peer_inprocess", "rtdash in-process (`Aggregator`, 2 worker threads, events generated in-process; with the built-in `events` metric: 5 series per event)", "events_per_sec", f"{TARGET_INPROCESS:.0f}x"),
        (exact, "peer_inprocess_exact", "rtdash in-process, the peers' aggregation only (`--no-builtin-events`: 1 series per event)", "events_per_sec", f"{TARGET_INPROCESS:.0f}x"),
        (http, "peer_http", "rtdash through the edge agent (HTTP, JSON batches of 1,000, generator on the same 2 cores)", "accepted_rate", f"{TARGET_HTTP:.0f}x"),
    ]:
        m = median_value(runs, path)
        rows.append([
            label, med(runs, path), med(runs, "events_per_cpu_sec") if path == "events_per_sec" else "-", len(runs),
            ratio(m, f) if flink else "no Flink figure", ratio(m, sp) if spark else "no Spark figure", target, cmd(cmds, name),
        ])
    rows.append([FLINK_LABEL, med(flink, "events_per_s_net") if flink else "not measured in this run", "-", len(flink),
                 "1.00x" if flink else "-", ratio(f, sp) if spark else "-", "-", cmd(cmds, "peer_flink")])
    sustained = sum(1 for r in spark if r.get("sustained"))
    spark_label = SPARK_LABEL
    if spark:
        spark_label += f"; offered {spark[-1].get('rate', 0):,} rows/s, sustained in {sustained} of {len(spark)} runs"
    rows.append([spark_label, med(spark, "median_processed_rows_per_s") if spark else "not measured in this run", "-", len(spark),
                 ratio(sp, f) if flink else "-", "1.00x" if spark else "-", "-", cmd(cmds, "peer_spark")])
    text = table(["engine", "events/s: median (min-max)", "events per CPU-second", "runs", "vs Flink (this run)",
                  "vs Spark (this run)", "target vs Flink", "command"], rows)
    if inproc:
        r = inproc[-1]
        text += (
            f"\n\nLast in-process run: {r.get('events', 0):,} events in {r.get('seconds', 0):.1f} s; "
            f"{r.get('windows_emitted', 0)} windows emitted with at most {r.get('max_groups_per_window', 0)} groups; "
            f"{r.get('late_generated', 0):,} late events generated, {r.get('late_dropped', 0):,} dropped "
            f"(window already emitted); every other event is counted in the output "
            f"({r.get('events_emitted', 0):,} + {r.get('late_dropped', 0):,} = {r.get('events_emitted', 0) + r.get('late_dropped', 0):,})."
        )
    if spark:
        text += (f"\n\nSpark's runs: median micro-batch {med(spark, 'median_batch_s', 1)} s, "
                 f"median processed/offered {med(spark, 'median_processed_over_input', 2)}, "
                 f"rows dropped by the watermark {med(spark, 'rows_dropped_by_watermark')}.")
    text += engine_failures(results)
    text += "\n\n" + run_line(results, PEER_NAMES)
    return text


PEER_NAMES = {"peer_inprocess", "peer_inprocess_exact", "peer_http", "peer_flink", "peer_spark"}


def paired(a_runs, a_path, b_runs, b_path):
    """Per-run ratios of run i of A to run i of B (the runs alternate, so run i of each saw
    about the same load)."""
    out = []
    for a, b in zip(a_runs, b_runs):
        x, y = get(a, a_path), get(b, b_path)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y > 0:
            out.append(x / y)
    return out


def section_peer_ratios(results, cmds):
    inproc = load_runs(results, "peer_inprocess")
    exact = load_runs(results, "peer_inprocess_exact")
    http = load_runs(results, "peer_http")
    flink, spark = engine_rows(results)
    if not flink and not spark:
        return "not measured in this run (the peer engines did not run: `bench/run.sh --no-peers`, or they failed; see the results directory)"
    peers = [("Flink", flink, "events_per_s_net"), ("Spark", spark, "median_processed_rows_per_s")]
    rows = []
    judge = judged(results, PEER_NAMES)
    for label, runs, path, target in [
        ("rtdash in-process (5 series per event)", inproc, "events_per_sec", TARGET_INPROCESS),
        ("rtdash in-process, the peers' aggregation only", exact, "events_per_sec", TARGET_INPROCESS),
        ("rtdash through the edge agent over HTTP", http, "accepted_rate", TARGET_HTTP),
    ]:
        mine = median_value(runs, path)
        for peer, peer_runs, peer_path in peers:
            theirs = median_value(peer_runs, peer_path)
            if not runs or not peer_runs:
                continue
            pairs = paired(runs, path, peer_runs, peer_path) if label != "rtdash through the edge agent over HTTP" else []
            r = mine / theirs if mine and theirs else None
            is_flink = peer == "Flink"
            rows.append([
                f"{label} / {peer}",
                f"{r:.2f}x" if r else "-",
                ", ".join(f"{x:.2f}x" for x in pairs) if pairs else "-",
                f">= {target:.0f}x" if is_flink else "-",
                (("yes" if r and r >= target else "**no**") if judge else "not judged (not comparable)") if is_flink else "-",
            ])
    text = table(["ratio (medians of the same run)", "median / median", "run by run (alternated runs)", "target (issue 19)", "met"], rows)
    text += ("\n\nThe HTTP runs need the stack, so they come after the no-stack phase in which rtdash in-process and "
             "the engines alternate; their ratio is against the engines' medians of that quieter phase.")
    text += engine_failures(results)
    text += "\n\n" + run_line(results, PEER_NAMES)
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


def fresh_rss(results):
    try:
        with open(os.path.join(results, "fresh_rss.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def kib_per_viewer(runs, path, fresh):
    """(RSS with every viewer connected - RSS before the server had any viewer) / viewers connected, in KiB, per run."""
    out = []
    for r in runs:
        rss, n = get(r, path), r.get("connected")
        if isinstance(rss, (int, float)) and isinstance(fresh, (int, float)) and n:
            out.append({"kib": (rss - fresh) * 1024 / n})
    return out


def fanout_peer_viewers(results):
    names = {f.split(".")[0] for f in os.listdir(results) if f.startswith("fanoutpeer_") and f.endswith(".json")}
    return sorted({int(n.rsplit("_", 1)[1]) for n in names if n.rsplit("_", 1)[1].isdigit()})


def section_fanout_peer(results, cmds):
    viewers = fanout_peer_viewers(results)
    if not viewers:
        return "not measured in this run"
    fresh = fresh_rss(results)
    rows, ratios = [], []
    for v in viewers:
        gw = load_runs(results, f"fanoutpeer_gateway_{v}")
        cf = load_runs(results, f"fanoutpeer_centrifugo_{v}")
        for label, runs, name, rss_path, base in [
            ("rtdash gateway alone (markers on NATS)", gw, f"fanoutpeer_gateway_{v}", "gateway_rss_connected_mib", fresh.get("gateway_mib")),
            ("Centrifugo 6.9.1, uni_sse (markers through its HTTP API)", cf, f"fanoutpeer_centrifugo_{v}", "server_rss_connected_mib", fresh.get("centrifugo_mib")),
        ]:
            if not runs:
                continue
            per = kib_per_viewer(runs, rss_path, base)
            rows.append([
                label, f"{v:,}", len(runs), med(runs, "connected"),
                f"{fmt_num(median_value(runs, 'deliveries'))} of {fmt_num(median_value(runs, 'expected_deliveries'))}",
                med(runs, "delay.p50_ms"), med(runs, "delay.p99_ms"), med(runs, "delay.max_ms"),
                fmt_num(base, 0) if isinstance(base, (int, float)) else "-", med(runs, rss_path), med(per, "kib", 1),
                cmd(cmds, name),
            ])
        g99, c99 = median_value(gw, "delay.p99_ms"), median_value(cf, "delay.p99_ms")
        gk = median_value(kib_per_viewer(gw, "gateway_rss_connected_mib", fresh.get("gateway_mib")), "kib")
        ck = median_value(kib_per_viewer(cf, "server_rss_connected_mib", fresh.get("centrifugo_mib")), "kib")
        ratios.append(f"{v:,} viewers: p99 gateway / Centrifugo {ratio(g99, c99)}, memory per viewer gateway / Centrifugo {ratio(gk, ck)}")
    text = table(["server", "viewers", "runs", "connected", "deliveries (median of expected)", "delay p50 ms", "delay p99 ms", "delay max ms",
                  "RSS before any viewer MiB", "RSS connected MiB", "KiB per viewer", "command"], rows)
    text += "\n\n" + "; ".join(ratios) + "."
    text += "\n\n" + run_line(results, {f"fanoutpeer_{s}_{v}" for s in ("gateway", "centrifugo") for v in viewers})
    return text


SECTIONS = {
    "machine": section_machine,
    "peer": section_peer,
    "peer-ratios": section_peer_ratios,
    "ingest": section_ingest,
    "aggregator": section_aggregator,
    "e2e": section_e2e,
    "fanout": section_fanout,
    "fanout-peer": section_fanout_peer,
}


def main():
    args = sys.argv[1:]
    only = None
    if len(args) == 4 and args[2] == "--sections":
        only = set(args[3].split(","))
        args = args[:2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results, target = args
    with open(target) as f:
        doc = f.read()
    cmds = commands(results)
    for key, build in SECTIONS.items():
        if only is not None and key not in only:
            continue
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
