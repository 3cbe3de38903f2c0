"""Emits log records through the OpenTelemetry SDK's OTLP/HTTP log exporter.

Reads a JSON spec on stdin: {"endpoint" (the full /v1/logs URL), "service_name",
"compression": "gzip"|"none", "headers" (sent with every export, e.g. the ingest key), "records": [{"event_name", "attributes", "body",
"severity_text"}]}. Prints {"result": "SUCCESS"|"FAILURE"} of the final flush and "exports":
the result of each export call the exporter made (what the agent answered).
"""
import json
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

spec = json.load(sys.stdin)
compression = Compression.Gzip if spec.get("compression", "gzip") == "gzip" else Compression.NoCompression
exporter = OTLPLogExporter(endpoint=spec["endpoint"], compression=compression, headers=spec.get("headers"))
exports = []
_export = exporter.export


def recording_export(batch):
    result = _export(batch)
    exports.append(result.name)
    return result


exporter.export = recording_export
provider = LoggerProvider(resource=Resource.create({"service.name": spec["service_name"]}))
provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=spec.get("batch", 512)))
logger = provider.get_logger("rtdash-test", "1.0")
for record in spec["records"]:
    logger.emit(
        event_name=record.get("event_name"),
        attributes=record.get("attributes"),
        body=record.get("body"),
        severity_text=record.get("severity_text"),
    )
ok = provider.force_flush(30_000)
provider.shutdown()
print(json.dumps({"result": "SUCCESS" if ok else "FAILURE", "exports": exports}))
