#!/usr/bin/env python3
# One of the peer workload's reference scripts (shared/bench/peer-workload.md): the script that
# produced the project's Spark figures, kept as it was as a benchmark input of bench/run.sh
# (installed by bench/peers/setup.sh; see BENCHMARKS.md, "Peers side by side").
"""Spark Structured Streaming run of the canonical windowed workload (see WORKLOAD.md).

Run (one command, stops by itself after --duration seconds):

    $VENV/bin/python spark_window_bench.py --rate 500000 --duration 90

Setup: python3 -m venv $VENV && $VENV/bin/pip install "pyspark==4.0.*"
(needs Java 17+: /usr/bin/java here).

What it does: local[2] Spark, built-in `rate` source at --rate rows/s (2 partitions),
rows mapped to the workload's fields, withWatermark("occurred_at", "30 seconds"),
groupBy(window(occurred_at, 60 s), tenant_id, event_type, region, plan)
.agg(count, sum, min, max, approx_count_distinct(user_id), percentile_approx(amount, 0.99)),
output mode append, `noop` sink (or `memory`), processing-time trigger (--trigger).

It records every micro-batch's progress, drops those that started in the first
--warmup seconds, and prints the median processedRowsPerSecond, the median batch
duration (durationMs.triggerExecution) and whether the rate was sustained:
the steady-state batches must keep processedRowsPerSecond >= inputRowsPerSecond
(median ratio >= 1) and the batch duration must stay within the trigger interval
(median of the last third of batches <= trigger) and not grow (last third <= 1.25 x
first third, unless still within the trigger). The last line looks like
    spark: 200000 events/s sustained (local[2]), median batch 1.8 s, ...
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=200000, help="rate source rowsPerSecond")
    ap.add_argument("--duration", type=float, default=75.0, help="seconds the query runs")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds of batches left out of the stats")
    ap.add_argument("--trigger", type=float, default=5.0,
                    help="processing-time trigger in seconds (0 = default trigger, next batch as soon as possible)")
    ap.add_argument("--sink", choices=["noop", "memory"], default="noop")
    ap.add_argument("--partitions", type=int, default=2, help="rate source partitions and shuffle partitions")
    ap.add_argument("--state-store", choices=["hdfs", "rocksdb"], default="hdfs")
    ap.add_argument("--no-percentile", action="store_true", help="leave percentile_approx out")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--json-out", help="append a JSON summary line to this file")
    return ap.parse_args()


def main():
    a = parse_args()
    from pyspark.sql import SparkSession, functions as F
    import pyspark

    ckpt = tempfile.mkdtemp(prefix="spark-window-bench-")
    b = (SparkSession.builder.appName("window-bench")
         .master(f"local[{a.partitions}]")
         .config("spark.driver.memory", a.driver_memory)
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.sql.shuffle.partitions", str(a.partitions))
         .config("spark.sql.streaming.numRecentProgressUpdates", "10000")
         .config("spark.local.dir", ckpt))
    if a.state_store == "rocksdb":
        b = b.config("spark.sql.streaming.stateStore.providerClass",
                     "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    java_version = spark.sparkContext._jvm.java.lang.System.getProperty("java.runtime.version")

    def pick(k, n):
        # independent uniform field in 0..n-1, from a per-field hash of the sequence number
        return F.pmod(F.xxhash64(F.col("value"), F.lit(k)), F.lit(n)).cast("int")

    src = (spark.readStream.format("rate")
           .option("rowsPerSecond", a.rate)
           .option("numPartitions", a.partitions)
           .load())
    late_ms = F.when(F.rand(7) < 0.05, F.floor(F.rand(11) * 50000)).otherwise(F.lit(0)).cast("long")
    ev = src.select(
        pick(1, 10).alias("tenant_id"),
        pick(2, 5).alias("event_type"),
        pick(3, 4).alias("region"),
        pick(4, 3).alias("plan"),
        F.exp(F.lit(3.0) + F.randn(5)).alias("amount"),
        pick(6, 100000).alias("user_id"),
        F.timestamp_millis(F.unix_millis(F.col("timestamp")) - late_ms).alias("occurred_at"),
    )
    aggs = [
        F.count(F.lit(1)).alias("cnt"),
        F.sum("amount").alias("sum_amount"),
        F.min("amount").alias("min_amount"),
        F.max("amount").alias("max_amount"),
        F.approx_count_distinct("user_id").alias("approx_users"),
    ]
    if not a.no_percentile:
        aggs.append(F.percentile_approx("amount", 0.99).alias("p99_amount"))
    out = (ev.withWatermark("occurred_at", "30 seconds")
           .groupBy(F.window("occurred_at", "60 seconds"), "tenant_id", "event_type", "region", "plan")
           .agg(*aggs))

    w = out.writeStream.outputMode("append").option("checkpointLocation", os.path.join(ckpt, "ckpt"))
    if a.sink == "memory":
        w = w.format("memory").queryName("window_bench_out")
    else:
        w = w.format("noop")
    if a.trigger > 0:
        w = w.trigger(processingTime=f"{a.trigger} seconds")

    t0 = time.time()
    q = w.start()
    progress = {}
    try:
        while time.time() - t0 < a.duration:
            time.sleep(1.0)
            if q.exception() is not None:
                raise RuntimeError(str(q.exception()))
            for p in q.recentProgress:
                progress[p["batchId"]] = p
    finally:
        for p in q.recentProgress:
            progress[p["batchId"]] = p
        q.stop()
        if a.sink == "memory":
            n_out = spark.sql("select count(*) from window_bench_out").collect()[0][0]
        else:
            n_out = None
        spark.stop()
        shutil.rmtree(ckpt, ignore_errors=True)
    wall = time.time() - t0

    from datetime import datetime
    def ts(p):
        return datetime.strptime(p["timestamp"][:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()

    batches = [progress[k] for k in sorted(progress)]
    first = ts(batches[0]) if batches else t0
    steady = [p for p in batches if ts(p) - first >= a.warmup and p["numInputRows"] > 0]
    if not steady:
        print(f"spark: no steady-state batches (got {len(batches)} batches in {wall:.0f} s)")
        sys.exit(1)
    dur = [p["durationMs"]["triggerExecution"] / 1000.0 for p in steady]
    proc = [p.get("processedRowsPerSecond") or 0.0 for p in steady]
    inp = [p.get("inputRowsPerSecond") or 0.0 for p in steady]
    ratio = [pr / ir for pr, ir in zip(proc, inp) if ir > 0]
    rows = sum(p["numInputRows"] for p in steady)
    span = ts(steady[-1]) + dur[-1] - ts(steady[0])
    third = max(1, len(dur) // 3)
    first_third, last_third = statistics.median(dur[:third]), statistics.median(dur[-third:])
    trig = a.trigger if a.trigger > 0 else None
    grows = last_third > 1.25 * first_third and last_third > (trig or 1.0)
    keeps_up = statistics.median(ratio) >= 1.0 if ratio else False
    within_trigger = (last_third <= trig) if trig else True
    sustained = keeps_up and within_trigger and not grows
    # keeps up, but only with micro-batches longer than the trigger (latency > trigger)
    sustained_long_batches = keeps_up and not grows and not within_trigger
    state_rows = steady[-1]["stateOperators"][0]["numRowsTotal"] if steady[-1].get("stateOperators") else None
    late_dropped = sum(p["stateOperators"][0].get("numRowsDroppedByWatermark", 0)
                       for p in steady if p.get("stateOperators"))
    summary = dict(
        engine="spark", version=pyspark.__version__, java=java_version, rate=a.rate,
        trigger_s=a.trigger, duration_s=a.duration, warmup_s=a.warmup, sink=a.sink,
        state_store=a.state_store, percentile=not a.no_percentile, partitions=a.partitions,
        batches_total=len(batches), batches_steady=len(steady),
        median_processed_rows_per_s=statistics.median(proc),
        min_processed_rows_per_s=min(proc), max_processed_rows_per_s=max(proc),
        median_input_rows_per_s=statistics.median(inp),
        median_processed_over_input=statistics.median(ratio) if ratio else None,
        rows_steady=rows, rows_per_s_steady=rows / span if span > 0 else None,
        median_batch_s=statistics.median(dur), max_batch_s=max(dur),
        first_third_batch_s=first_third, last_third_batch_s=last_third,
        state_rows_last=state_rows, rows_dropped_by_watermark=late_dropped,
        output_rows_memory_sink=n_out, sustained=sustained,
        sustained_long_batches=sustained_long_batches, wall_s=wall,
    )
    print(json.dumps(summary))
    if a.json_out:
        with open(a.json_out, "a") as f:
            f.write(json.dumps(summary) + "\n")
    verdict = ("sustained" if sustained else
               "kept up only with batches longer than the trigger" if sustained_long_batches else
               "NOT sustained")
    print(f"spark: {a.rate} events/s {verdict} (local[{a.partitions}]), median batch "
          f"{statistics.median(dur):.2f} s (trigger {a.trigger:g} s), median processedRowsPerSecond "
          f"{statistics.median(proc):.0f}, processed/input {summary['median_processed_over_input']:.2f}")


if __name__ == "__main__":
    main()
