"""What a hostile provider costs the gateway: each attack of ``proxy.testing.attacks`` against a gateway
process, with its peak RSS, its CPU seconds and the worst ``/healthz`` latency during the attack.

    .venv/bin/python -m bench.attacks                 # every attack
    .venv/bin/python -m bench.attacks -k gzip         # the attacks whose name contains "gzip"

The upstream is a raw asyncio TCP server in this process (``proxy.testing.hostile_upstream``); the gateway
is ``python -m proxy serve`` (memory store, one provider, two keys), a fresh process per attack. A poller
calls ``/healthz`` one call after another during each attack: its worst latency is how long any other
client would have waited.
``result`` is ``ok`` when the attacked client got a clean answer, the next client of another key got its
own answer and the RSS grew less than the attack's bound; otherwise the first problem found.
"""

from __future__ import annotations

import argparse
import sys

from proxy.testing.attack_runner import problems, run
from proxy.testing.attacks import ATTACKS, gateway_config
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.hostile_upstream import HostileUpstream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only the attacks whose name contains this")
    args = parser.parse_args(argv)
    attacks = [a for a in ATTACKS if args.k.lower() in a.name.lower()]
    print(f"{'attack':<26} {'client got':<12} {'peak RSS MiB':>12} {'growth MiB':>10} {'CPU s':>6}", end="")
    print(f" {'worst /healthz ms':>17}  result")
    failed = 0
    with HostileUpstream() as upstream:
        for attack in attacks:
            with GatewayProcess(gateway_config(upstream.url)) as gateway:  # a fresh one: RSS starts clean
                assert gateway.proc is not None
                result = run(gateway.url, gateway.proc.pid, upstream, attack, poll_health=True)
            found = problems(result)
            failed += bool(found)
            got = f"HTTP {result.answer.status}" if result.answer.status else "no answer"
            worst = f"{result.worst_health_ms:.0f}" if result.worst_health_ms is not None else "-"
            print(
                f"{attack.name:<26} {got:<12} {result.peak_rss_mib:>12.0f} {result.rss_growth_mib:>10.0f}"
                f" {result.cpu_seconds:>6.2f} {worst:>17}  {found[0][:90] if found else 'ok'}",
                flush=True,
            )
    print(f"{len(attacks) - failed} of {len(attacks)} attacks held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
