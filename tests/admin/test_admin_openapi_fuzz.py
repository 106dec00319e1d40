"""Schemathesis against ``/admin/openapi.json`` of a running gateway process: every documented operation,
generated inputs (bounded), no 5xx and every answer matching the document."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from support import ADMIN, base_config

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gateway(
    threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> GatewayProcess:
    config = base_config(threaded_fake.url)
    config["secrets"] = {"master_keys": [base64.urlsafe_b64encode(os.urandom(32)).decode()]}
    return gateway_process(config)


MAX_EXAMPLES = 25  # per operation: the whole run stays well under a minute


def test_admin_api_conforms(gateway: GatewayProcess) -> None:
    schema = schemathesis.openapi.from_url(gateway.url + "/admin/openapi.json", headers=ADMIN)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # keys, tenants, provider keys, usage, compare, estimate, records ...
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                base_url=gateway.url, headers=ADMIN, checks=[not_a_server_error, response_schema_conformance]
            )

        run()
