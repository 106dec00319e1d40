"""Tracing with OpenTelemetry: a SERVER span per ``/v1/`` request, a CLIENT span per upstream attempt.

Off unless the optional ``otel`` extra is installed *and* the standard environment asks for an exporter
(:func:`open_tracing`): ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``; ``none`` turns it off), or an
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (then ``otlp``);
``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. The exporter, the batch processor, the
sampler and the resource read their own ``OTEL_*`` variables (``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER``...). OTLP goes over HTTP/protobuf.

Off, the request path pays one ``None`` check in the edge and one context-variable read per upstream
attempt; nothing of OpenTelemetry is imported. On, spans are ended on the event loop (a queue append) and
exported by the SDK's batch thread, so no export ever waits on the loop.

The client's ``traceparent`` (W3C trace context) is the parent of the request span, and each attempt
sends its own ``traceparent`` upstream. Attribute names follow the GenAI semantic conventions
(``gen_ai.*``); the gateway's own are ``efflux.*``. Prompts and completions are never recorded.

This module knows nothing of requests or metering: the edge names the attributes (``proxy.app``) and
dispatch opens the attempts (``proxy.dataplane.dispatch``), through the request's :data:`CURRENT` trace.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("efflux.tracing")

Attribute = str | int | float | bool
EXPORTERS = ("otlp", "console")


class Tracing:
    """The app's tracer (one per app: several gateways may share a process, as in tests)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("efflux-gateway")
        self.propagator: TraceContextTextMapPropagator = TraceContextTextMapPropagator()

    def start(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Attribute]
    ) -> RequestTrace:
        """A SERVER span, child of the client's ``traceparent`` when it sent a valid one."""
        from opentelemetry.trace import SpanKind

        parent = self.propagator.extract(headers)
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        return RequestTrace(self, span)

    def shutdown(self) -> None:
        """Flush and stop (blocking: call it off the event loop)."""
        self.provider.shutdown()


class RequestTrace:
    """One request's span; dispatch opens its attempts under it."""

    __slots__ = ("capture", "has_input", "span", "tracing")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self.capture = False  # record the conversation's text (telemetry.capture_content)
        self.has_input = False  # the request's messages are recorded (once, whatever the attempts)

    def record(self, name: str, value: Attribute | None) -> None:
        if value is not None:
            self.span.set_attribute(name, value)

    def attempt(self, name: str, attributes: Mapping[str, Attribute]) -> AttemptTrace:
        from opentelemetry.trace import SpanKind, set_span_in_context

        span = self.tracing.tracer.start_span(
            name, context=set_span_in_context(self.span), kind=SpanKind.CLIENT, attributes=attributes
        )
        return AttemptTrace(self.tracing, span)

    def finish(self, name: str, attributes: Mapping[str, Attribute], error: str | None) -> None:
        """Name the span (once the model is known), set its attributes, and end it."""
        self.span.update_name(name)
        self.span.set_attributes(attributes)
        _end(self.span, error)


class AttemptTrace:
    """One upstream attempt's span: its ``traceparent`` goes to the provider."""

    __slots__ = ("span", "tracing")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with this attempt's ``traceparent`` (and the client's ``tracestate``)."""
        from opentelemetry.trace import set_span_in_context

        out: dict[str, str] = {
            k: v for k, v in headers.items() if k.lower() not in ("traceparent", "tracestate")
        }
        self.tracing.propagator.inject(out, context=set_span_in_context(self.span))
        return out

    def finish(self, attributes: Mapping[str, Attribute], error: str | None) -> None:
        self.span.set_attributes(attributes)
        _end(self.span, error)


def _end(span: Span, error: str | None) -> None:
    from opentelemetry.trace import Status, StatusCode

    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


# gen_ai.operation.name by endpoint (the path under /v1/); another endpoint is named by its path.
OPERATIONS = {
    "chat/completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
    "messages": "chat",
}


def operation(endpoint: str) -> str:
    return OPERATIONS.get(endpoint, endpoint)


# The request's trace, set by the edge for the request's task (None: tracing is off, or not a /v1/ call).
CURRENT: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar("efflux_trace", default=None)


def wanted_exporters(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the standard environment asks for ([]: tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER")
    if named is None:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    wanted = [name.strip().lower() for name in named.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in (*EXPORTERS, "none")]
    if unknown:
        log.warning(
            "OTEL_TRACES_EXPORTER: %s not supported (only %s)", ", ".join(unknown), ", ".join(EXPORTERS)
        )
    return [name for name in wanted if name in EXPORTERS]


def open_tracing(environ: Mapping[str, str]) -> Tracing | None:
    """The app's tracing as the environment configures it, or None (off, or the extra not installed)."""
    exporters = wanted_exporters(environ)
    if not exporters:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning("tracing asked for by OTEL_* but not installed: pip install 'efflux-gateway[otel]'")
        return None
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if "otlp" in exporters and protocol not in (None, "http/protobuf"):
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s not supported: spans go over http/protobuf", protocol)
    named: dict[str, Any] = {}
    if not environ.get("OTEL_SERVICE_NAME") and "service.name" not in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        named["service.name"] = "efflux-gateway"
    provider = TracerProvider(resource=Resource.create(named))
    for name in exporters:
        exporter: SpanExporter
        if name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                log.warning("OTLP exporter not installed: pip install 'efflux-gateway[otel]'")
                continue
            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing on: %s", ", ".join(exporters))
    return Tracing(provider)
