"""Sends metrics with the `datadog` package's DogStatsd client, the way a service would.

Reads a JSON spec on stdin: {"host", "port", "seed", "buffering", "calls": [{"method":
"increment"|"gauge"|"histogram"|"distribution"|"timing"|"set", "metric", "value", "tags",
"sample_rate", "repeat"}]}. The client samples on its side (it skips a call when random() >
rate); `seed` seeds Python's random, and the lines the client really sent are counted per
metric by wrapping its socket writes. Prints {"sent_lines": {metric: n}, "packets": n}.
"""
import json
import random
import sys
from collections import Counter

from datadog.dogstatsd import DogStatsd

spec = json.load(sys.stdin)
random.seed(spec.get("seed", 1))
client = DogStatsd(
    host=spec["host"],
    port=spec["port"],
    disable_buffering=not spec.get("buffering", True),
    disable_telemetry=True,
    origin_detection_enabled=False,
)
sent = Counter()
packets = [0]
original = client._xmit_packet


def counting(packet, is_telemetry, queue_mode=False):
    packets[0] += 1
    for line in packet.splitlines():
        if line:
            sent[line.split(":", 1)[0]] += 1
    return original(packet, is_telemetry, queue_mode)


client._xmit_packet = counting
for call in spec["calls"]:
    method = getattr(client, call["method"])
    for _ in range(call.get("repeat", 1)):
        method(call["metric"], call["value"], tags=call.get("tags"), sample_rate=call.get("sample_rate", 1))
client.flush()
client.close_socket()
print(json.dumps({"sent_lines": dict(sent), "packets": packets[0]}))
