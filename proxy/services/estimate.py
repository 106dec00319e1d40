"""What a chat request would cost before it is sent: the worst case admission reserves, and the cost of a
typical answer (``POST /admin/estimate``)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.dataplane.body import ClientBody
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.metering.meter import make_plan
from proxy.metering.pricing import cost_micro_usd, worst_case_micro_usd
from proxy.plugin import Usage
from proxy.services.analytics import PAGE
from proxy.state.snapshot import Snapshot
from proxy.store.records import Outcome, RecordQuery

DEFAULT_EXPECTED_OUTPUT = 256  # tokens, when the ledger has no answers of this model yet


class EstimateRequest(BaseModel):
    """An OpenAI chat request, as it would be sent to ``/v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, object]]
    max_tokens: Annotated[int, Field(ge=1, le=2**31)] | None = None  # bounded: costs stay JSON integers


class TargetEstimate(BaseModel):
    provider: str
    upstream_model: str
    worst_case_micro_usd: int
    expected_micro_usd: int


class Estimate(BaseModel):
    model: str
    prompt_tokens: int
    max_output_tokens: int
    expected_output_tokens: int
    expected_basis: Literal["ledger", "default"]
    worst_case_micro_usd: int
    expected_micro_usd: int
    targets: list[TargetEstimate]


async def estimate(
    gw: Gateway, snapshot: Snapshot, body: ClientBody, *, key: str | None = None, tenant: str | None = None
) -> dict[str, object]:
    """What a chat request would cost: the admission's worst case, and a typical answer's cost (the
    mean answer length of the model in the last 7 days of the ledger, or a default). ``key`` and
    ``tenant`` narrow the ledger read to that key's own records (``/me/estimate``)."""
    resolution = snapshot.resolve(body.model)
    if resolution is None:
        raise NotFound(f"The model '{body.model}' does not exist on this gateway.")
    priced = [(c, p) for c in resolution.choices if (p := snapshot.price(c.provider, c.model)) is not None]
    if not priced:
        raise InvalidRequest(f"The model '{body.model}' has no price.", param="model")
    metering = snapshot.settings.metering
    plan = make_plan((), body, [p for _, p in priced], metering.default_max_tokens, metering.reserve)
    recent = await gw.store.records(
        RecordQuery(key=key, tenant=tenant, since=time.time() - 7 * 86400, limit=PAGE)
    )
    answers = [
        r.completion_tokens for r in recent.data if r.model == body.model and r.outcome is Outcome.COMPLETED
    ]
    basis: Literal["ledger", "default"] = "ledger" if answers else "default"
    expected_out = round(sum(answers) / len(answers)) if answers else DEFAULT_EXPECTED_OUTPUT
    expected_out = min(expected_out, plan.max_output_tokens)
    targets = [
        TargetEstimate(
            provider=c.provider,
            upstream_model=c.model,
            worst_case_micro_usd=worst_case_micro_usd(plan.prompt_tokens, plan.max_output_tokens, p),
            expected_micro_usd=cost_micro_usd(
                Usage(prompt_tokens=plan.prompt_estimate(p), completion_tokens=expected_out), p
            ),
        )
        for c, p in priced
    ]
    return Estimate(
        model=body.model,
        prompt_tokens=plan.prompt_tokens,
        max_output_tokens=plan.max_output_tokens,
        expected_output_tokens=expected_out,
        expected_basis=basis,
        worst_case_micro_usd=plan.cost_micro_usd,
        # The first target serves unless it fails: the expected cost is at its price.
        expected_micro_usd=targets[0].expected_micro_usd,
        targets=targets,
    ).model_dump()
