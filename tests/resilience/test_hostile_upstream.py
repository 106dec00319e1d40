"""A hostile provider against the gateway as a real process (issue 13): every attack of
:mod:`proxy.testing.attacks` gives its own client a clean error (a 502 envelope before the first byte, an
SSE error event after it) or, for odd but readable framing, its own answer; the next request of another
key on the same provider gets its own answer; the gateway never sends another request on a connection
whose framing went wrong; and the gateway process's RSS (``/proc/<pid>/status``) grows by less than the
attack's bound (100 MiB, also for the 1 GiB bombs). Nothing here measures time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.testing.attack_runner import problems, run
from proxy.testing.attacks import ATTACKS, Attack, gateway_config
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.hostile_upstream import HostileUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture
def gateway(upstream: HostileUpstream) -> Iterator[GatewayProcess]:
    """A fresh process per attack: its RSS and its connection pool start clean."""
    with GatewayProcess(gateway_config(upstream.url)) as process:
        yield process


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack(gateway: GatewayProcess, upstream: HostileUpstream, attack: Attack) -> None:
    assert gateway.proc is not None
    result = run(gateway.url, gateway.proc.pid, upstream, attack)
    assert not problems(result), (problems(result), gateway.log()[-2000:])


def test_the_runner_sees_a_failure(gateway: GatewayProcess, upstream: HostileUpstream) -> None:
    """The checks can fail: an honest answer where a 502 is expected is reported."""
    assert gateway.proc is not None

    async def hang_up(x: object) -> bool:
        raise ConnectionError  # closes at once: the gateway answers 502, not the expected answer

    attack = Attack("runner check", hang_up, False, "answer", rss_mib=0)
    found = problems(run(gateway.url, gateway.proc.pid, upstream, attack))
    assert any("expected its own answer" in p for p in found)
    assert any("RSS grew" in p for p in found)
