"""Sends Segment calls with segment-analytics-python, the way a service would.

Reads a JSON spec on stdin: {"host", "write_key", "gzip", "upload_size", "messages": [...]},
each message {"type": "track"|"identify"|"page"|"screen"|"group"|"alias", "user_id",
"event", "properties", "traits", "name", "group_id", "previous_id", "message_id",
"timestamp"}. Prints {"errors": [...]}: what the library's on_error reported.
"""
import json
import sys
from datetime import datetime

from segment.analytics import Client

spec = json.load(sys.stdin)
errors = []


def on_error(error, batch):
    errors.append({"error": str(error), "messages": len(batch)})


client = Client(
    spec["write_key"],
    host=spec["host"],
    gzip=spec.get("gzip", True),
    on_error=on_error,
    max_retries=3,
    upload_size=spec.get("upload_size", 100),
)
for m in spec["messages"]:
    common = {
        "message_id": m.get("message_id"),
        "timestamp": datetime.fromisoformat(m["timestamp"]) if "timestamp" in m else None,
    }
    kind = m["type"]
    if kind == "track":
        client.track(user_id=m["user_id"], event=m["event"], properties=m.get("properties"), **common)
    elif kind == "identify":
        client.identify(user_id=m["user_id"], traits=m.get("traits"), **common)
    elif kind == "page":
        client.page(user_id=m["user_id"], name=m.get("name"), properties=m.get("properties"), **common)
    elif kind == "screen":
        client.screen(user_id=m["user_id"], name=m.get("name"), properties=m.get("properties"), **common)
    elif kind == "group":
        client.group(user_id=m["user_id"], group_id=m["group_id"], traits=m.get("traits"), **common)
    elif kind == "alias":
        client.alias(previous_id=m["previous_id"], user_id=m["user_id"], **common)
    else:
        raise SystemExit(f"unknown message type {kind}")
client.flush()
client.shutdown()
print(json.dumps({"errors": errors}))
