"""bench/compare.py runs end to end with tiny counts and reports every figure."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

COMPARE = pathlib.Path(__file__).resolve().parents[1] / "bench" / "compare.py"


def test_the_comparison_reports_positive_figures_for_both_sides_of_every_pair() -> None:
    run = subprocess.run(
        [sys.executable, str(COMPARE), "--rounds", "2", "--requests", "3", "--bulk-mib", "0.25",
         "--bulk-requests", "1", "--gateways", "3", "--json"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    pairs = {"token": ("gateway_auth", "authlib"), "token_async": ("gateway_auth", "authlib"), "get": ("gateway_auth", "httpx_ssl"),
             "get_async": ("gateway_auth", "httpx_ssl"), "bulk": ("gateway_auth", "httpx_ssl"),
             "rotation_past_capacity": ("gateway_auth", "gateway_auth_tiny_lfu", "seed_ssl_cache"),
             "rotation_within_capacity": ("gateway_auth", "seed_ssl_cache")}
    assert set(figures["results"]) == set(pairs)
    for what, sides in pairs.items():
        assert set(figures["results"][what]) == set(sides)
        for side in sides:
            s = figures["results"][what][side]
            for field in ("median", "p99", "round_min", "round_max"):
                assert s[field] > 0, (what, side, field)
            assert s["round_min"] <= s["round_max"]
            expected = {"bulk": 2, "rotation_past_capacity": 6, "rotation_within_capacity": 4}
            assert s["samples"] == expected.get(what, 6)
    assert figures["units"]["bulk"] == "MiB/s"
