"""The chaos run of ``bench.chaos``, short: two real server processes, a Redis of its own,
random people, one instance killed with SIGKILL and restarted, then Redis killed and restarted
(PostgreSQL when ``CC_TEST_DATABASE_URL`` is set). ``make chaos`` runs the full one."""

from __future__ import annotations

import secrets

import pytest

from bench import chaos

pytestmark = pytest.mark.timeout(420)


def test_nothing_is_lost_or_doubled_through_a_kill_and_a_redis_restart(capsys):
    seed = secrets.randbelow(2**31)
    # settle: a contact the router still holds although it ended (Redis failed between the two
    # writes) is let go by the first reconcile pass (every 5 s here) once it is older than the
    # reconciler's settle time (10 s): 16 s covers one that ended last
    args = chaos.build_parser().parse_args([
        "--contacts", "40", "--advisors", "8", "--seconds", "20", "--lines", "3",
        "--settle-s", "16", "--max-seconds", "300", "--seed", str(seed),
    ])
    result = chaos.run(args)
    print(result)
    failure = f"seed {seed} (python -m bench.chaos --seed {seed} ...): {result}"
    assert result["contacts"] >= 38 and result["lines_acked"] > 0, failure  # it really ran
    assert result["lost"] == [] and result["start_failures"] == 0, failure
    assert result["double_assigned"] == result["over_capacity"] == 0, failure
    assert result["lines_missing"] == result["lines_duplicated"] == 0, failure
    assert result["lines_out_of_order"] == 0, failure
    assert result["router_mismatches"] == [], failure
    assert result["reconnects"] > 0, failure  # the kill and the drops were felt
