"""Usage: the ledger, ``GET /admin/usage/records``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_response, limit, number
from proxy.errors import GatewayError
from proxy.ledger import export
from proxy.services import analytics
from proxy.store.records import RecordPage, RecordQuery


@operation(
    "Ledger records, newest last, filtered and paginated",
    response=RecordPage,
    query=(
        ("request_id", "string", "the gateway's request id or the client's x-request-id"),
        ("key", "string", "virtual key name"),
        ("tenant", "string", "tenant name"),
        ("since", "number", "unix seconds, inclusive"),
        ("until", "number", "unix seconds, exclusive"),
        ("limit", "integer", "1..1000, default 100"),
        ("cursor", "string", "next_cursor of the previous page"),
    ),
    tag="usage",
)
async def records(request: web.Request) -> web.Response:
    q = request.query
    query = RecordQuery(
        request_id=q.get("request_id") or None,
        key=q.get("key") or None,
        tenant=q.get("tenant") or None,
        since=number(q, "since"),
        until=number(q, "until"),
        limit=limit(q),
        cursor=q.get("cursor") or None,
    )
    return json_response(await analytics.records_page(gateway(request), query))


@operation(
    "Every ledger record of a time range as CSV or JSON lines, streamed (from PostgreSQL when configured)",
    query=(
        ("format", "string", "csv (default) or jsonl"),
        ("since", "number", "unix seconds, inclusive"),
        ("until", "number", "unix seconds, exclusive"),
        ("tenant", "string", "only this tenant"),
    ),
    tag="usage",
)
async def export_records(request: web.Request) -> web.StreamResponse:
    q = request.query
    fmt = export.format_of(q.get("format"))
    query = RecordQuery(tenant=q.get("tenant") or None, since=number(q, "since"), until=number(q, "until"))
    gw = gateway(request)
    chunks = export.export(fmt, query, ledger=gw.ledger, store=gw.store)
    try:
        return await _stream(request, fmt, chunks)
    finally:
        await chunks.aclose()  # a client gone mid-way: the cursor is closed now, not when collected


async def _stream(request: web.Request, fmt: str, chunks: AsyncGenerator[bytes, None]) -> web.StreamResponse:
    first = await anext(chunks, b"")  # a failure before any byte is still an error envelope
    response = web.StreamResponse(
        headers={
            "Content-Type": export.CONTENT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="usage.{fmt}"',
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    except GatewayError:
        # Past the headers an error can only cut the body: the client sees a chunked answer never ended.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/usage/records", records)
    router.add_get("/usage/export", export_records)
