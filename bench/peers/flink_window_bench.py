#!/usr/bin/env python3
# One of the peer workload's reference scripts (shared/bench/peer-workload.md): the script that
# produced the project's Flink figures, kept as it was as a benchmark input of bench/run.sh
# (installed by bench/peers/setup.sh; see BENCHMARKS.md, "Peers side by side").
"""PyFlink (Flink SQL) run of the canonical windowed workload (see WORKLOAD.md).

Run (one command; the source is bounded, so the job ends by itself):

    $VENV/bin/python flink_window_bench.py --rows 40000000

Setup: python3 -m venv $VENV && $VENV/bin/pip install "apache-flink==2.3.0"
(Flink 2.x runs on Java 11/17/21; this uses /usr/bin/java, OpenJDK 17).

What it does: a local MiniCluster (inside the PyFlink gateway JVM, heap --heap),
parallelism 2, a `datagen` source of --rows rows (at --rps rows/s in total; the
default 1e9 means "as fast as it goes"), computed columns giving the workload's
fields (amount = exp(3 + N(0,1)) by Box-Muller; occurred_at = now, or for 5% of rows
a datagen timestamp up to 50 s in the past), WATERMARK occurred_at - 30 s, a
TUMBLE(occurred_at, 1 minute) window TVF aggregation grouped by
(tenant_id, event_type, region, plan) with COUNT(*), SUM, MIN, MAX and
COUNT(DISTINCT user_id), into a `blackhole` sink. Pure SQL: no Python UDF, so no
Python worker runs; Python only submits the job.

Flink SQL in streaming mode has no approximate distinct count (APPROX_COUNT_DISTINCT
is batch-only) and no approximate percentile (PERCENTILE is exact and keeps every
distinct value in state), so the default run uses exact COUNT(DISTINCT user_id)
and no p99; --distinct none / --percentile exact change that.

It reports events/s = rows / job net runtime (and rows / wall time from submission).
The last line looks like
    flink: 1234567 events/s (parallelism 2, bounded datagen 40000000 rows, net runtime 32.4 s)
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40_000_000, help="rows the bounded datagen source emits")
    ap.add_argument("--rps", type=float, default=1e9, help="datagen rows-per-second (total over subtasks)")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--distinct", choices=["exact", "none"], default="exact")
    ap.add_argument("--percentile", choices=["none", "exact"], default="none")
    ap.add_argument("--checkpoint-interval", default="", help="e.g. '10 s' to turn checkpointing on")
    ap.add_argument("--heap", default="8g", help="-Xmx of the gateway JVM that hosts the MiniCluster")
    ap.add_argument("--timeout", type=float, default=600.0, help="cancel the job after this many seconds")
    ap.add_argument("--explain", action="store_true", help="print the plan too")
    ap.add_argument("--json-out", help="append a JSON summary line to this file")
    return ap.parse_args()


def main():
    a = parse_args()
    os.environ["JVM_ARGS"] = (os.environ.get("JVM_ARGS", "") + f" -Xmx{a.heap} -Xms{a.heap}").strip()
    # By default PyFlink starts a Beam "loopback" worker-pool gRPC server bound to [::]:0
    # (all interfaces) for Python UDFs in a MiniCluster. This job has no Python UDF, so
    # ask for 'process' mode, which starts no server.
    os.environ["_python_worker_execution_mode"] = "process"
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment
    import pyflink.version

    conf = Configuration()
    for k, v in {
        "parallelism.default": str(a.parallelism),
        "taskmanager.numberOfTaskSlots": str(a.parallelism),
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.rpc.address": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
    }.items():
        conf.set_string(k, v)
    if a.checkpoint_interval:
        conf.set_string("execution.checkpointing.interval", a.checkpoint_interval)
        conf.set_string("execution.checkpointing.dir", "file://" + os.path.join(tempfile.gettempdir(), "flink-window-bench-ckpt") + "")
    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    t_env = TableEnvironment.create(settings)
    from pyflink.java_gateway import get_gateway
    java_version = get_gateway().jvm.java.lang.System.getProperty("java.runtime.version")

    t_env.execute_sql(f"""
    CREATE TEMPORARY TABLE events (
      tenant_id INT,
      event_type INT,
      region INT,
      plan INT,
      u1 DOUBLE,
      u2 DOUBLE,
      user_id INT,
      late_pct INT,
      now_ts TIMESTAMP_LTZ(3),
      past_ts TIMESTAMP_LTZ(3),
      amount AS EXP(3.0 + SQRT(-2.0 * LN(u1)) * COS(2.0 * PI() * u2)),
      occurred_at AS CASE WHEN late_pct < 5 THEN past_ts ELSE now_ts END,
      WATERMARK FOR occurred_at AS occurred_at - INTERVAL '30' SECOND
    ) WITH (
      'connector' = 'datagen',
      'number-of-rows' = '{a.rows}',
      'rows-per-second' = '{int(a.rps)}',
      'fields.tenant_id.min' = '0', 'fields.tenant_id.max' = '9',
      'fields.event_type.min' = '0', 'fields.event_type.max' = '4',
      'fields.region.min' = '0', 'fields.region.max' = '3',
      'fields.plan.min' = '0', 'fields.plan.max' = '2',
      'fields.u1.min' = '0.000001', 'fields.u1.max' = '1.0',
      'fields.u2.min' = '0.0', 'fields.u2.max' = '1.0',
      'fields.user_id.min' = '0', 'fields.user_id.max' = '99999',
      'fields.late_pct.min' = '0', 'fields.late_pct.max' = '99',
      'fields.now_ts.max-past' = '0 s',
      'fields.past_ts.max-past' = '50 s'
    )""")

    cols = ["COUNT(*) AS cnt", "SUM(amount) AS sum_amount", "MIN(amount) AS min_amount",
            "MAX(amount) AS max_amount"]
    sink_cols = ["cnt BIGINT", "sum_amount DOUBLE", "min_amount DOUBLE", "max_amount DOUBLE"]
    if a.distinct == "exact":
        cols.append("COUNT(DISTINCT user_id) AS users")
        sink_cols.append("users BIGINT")
    if a.percentile == "exact":
        cols.append("PERCENTILE(amount, 0.99) AS p99_amount")
        sink_cols.append("p99_amount DOUBLE")
    t_env.execute_sql(f"""
    CREATE TEMPORARY TABLE sink (
      window_start TIMESTAMP(3), window_end TIMESTAMP(3),
      tenant_id INT, event_type INT, region INT, plan INT,
      {", ".join(sink_cols)}
    ) WITH ('connector' = 'blackhole')""")
    query = f"""
    INSERT INTO sink
    SELECT window_start, window_end, tenant_id, event_type, region, plan, {", ".join(cols)}
    FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(occurred_at), INTERVAL '1' MINUTE))
    GROUP BY window_start, window_end, tenant_id, event_type, region, plan"""
    if a.explain:
        print(t_env.explain_sql(query))

    t0 = time.time()
    res = t_env.execute_sql(query)
    client = res.get_job_client()
    fut = client.get_job_execution_result()
    box = {}

    def wait():
        try:
            box["jr"] = fut.result()
        except Exception as e:  # noqa: BLE001
            box["err"] = e

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(a.timeout)
    if waiter.is_alive():
        client.cancel().result()
        print(f"flink: job cancelled after the {a.timeout:g} s timeout ({a.rows} rows not done)")
        sys.exit(2)
    if "err" in box:
        raise box["err"]
    jr = box["jr"]
    wall = time.time() - t0
    net_s = jr.get_net_runtime() / 1000.0
    eps = a.rows / net_s
    summary = dict(
        engine="flink", version=pyflink.version.__version__, java=java_version, rows=a.rows, rps=a.rps,
        parallelism=a.parallelism, distinct=a.distinct, percentile=a.percentile,
        checkpoint_interval=a.checkpoint_interval or None, heap=a.heap,
        net_runtime_s=net_s, wall_s=wall, events_per_s_net=eps, events_per_s_wall=a.rows / wall,
    )
    print(json.dumps(summary))
    if a.json_out:
        with open(a.json_out, "a") as f:
            f.write(json.dumps(summary) + "\n")
    rate_txt = "unthrottled" if a.rps >= 1e8 else f"rows-per-second {int(a.rps)}"
    print(f"flink: {eps:.0f} events/s (parallelism {a.parallelism}, bounded datagen {a.rows} rows, "
          f"{rate_txt}, distinct={a.distinct}, percentile={a.percentile}, net runtime {net_s:.1f} s, "
          f"wall {wall:.1f} s)")


if __name__ == "__main__":
    main()
