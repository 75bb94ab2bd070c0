"""Optional export to any OpenTelemetry collector over OTLP/HTTP, through the OpenTelemetry SDK's exporter.

Our spans become SDK ``ReadableSpan``s here, in the exporter thread (never on the request path). Inputs and
outputs travel as ``gen_ai.input.messages``-style attributes only when ``payloads`` is on: a collector is
often run by another team, so sending prompt text there is opt-in.
"""
from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from temper import __version__
from temper.ops.payloads import Masker, stored
from temper.ops.tracing import Finished, as_dict

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_KINDS = {"gateway": SpanKind.SERVER, "llm": SpanKind.CLIENT, "embedding": SpanKind.CLIENT,
          "rerank": SpanKind.CLIENT}


def parse_headers(value: str | None) -> dict[str, str]:
    """``k1=v1,k2=v2`` (the OTEL_EXPORTER_OTLP_HEADERS format) → dict."""
    out: dict[str, str] = {}
    for part in (value or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


class OtlpSink:
    name = "otlp"

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, *, service_name: str = "temper",
                 payloads: bool = False, payload_chars: int = 8000, masker: Masker | None = None,
                 timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers or {}, timeout=timeout_s)
        self.resource = Resource.create({"service.name": service_name, "service.version": __version__})
        self.scope = InstrumentationScope("temper", __version__)
        self.payloads = payloads
        self.payload_chars = payload_chars
        self.masker = masker

    def _convert(self, s: Finished) -> ReadableSpan:
        (trace_id, span_id, parent_id, root_id, workspace_id, name, kind, start_ns, end_ns, status, error, attributes,
         input, output) = s
        attrs = {k: v for k, v in as_dict(attributes).items() if v is not None}
        attrs["temper.span.kind"] = kind
        attrs["temper.workspace_id"] = workspace_id
        if self.payloads:
            for field, value in (("temper.input", input), ("temper.output", output)):
                text = stored(value, self.payload_chars, self.masker)
                if text is not None:
                    attrs[field] = text
        parent = SpanContext(trace_id, parent_id, is_remote=root_id is None, trace_flags=_SAMPLED) \
            if parent_id else None
        return ReadableSpan(name, context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED),
                            parent=parent, resource=self.resource, attributes=attrs,
                            kind=_KINDS.get(kind, SpanKind.INTERNAL),
                            status=Status(StatusCode.ERROR, error) if status == "error" else Status(StatusCode.OK),
                            start_time=start_ns, end_time=end_ns, instrumentation_scope=self.scope)

    def export(self, spans: Sequence[Finished]) -> None:
        result = self.exporter.export([self._convert(s) for s in spans])
        if result.name != "SUCCESS":
            raise RuntimeError(f"the OTLP endpoint {self.endpoint} did not accept the spans ({result.name})")

    def close(self) -> None:
        self.exporter.shutdown()
