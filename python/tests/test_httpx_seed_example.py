"""examples/seed_gateway.py runs against the development server: the seed gateway's
SSL-context cache and OAuth calls replaced by the plugin."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

from servers import DevServer  # noqa: E402

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "seed_gateway.py"


def test_the_seed_gateway_example_fetches_with_a_session_token_and_resumes_tls(tmp_path: pathlib.Path) -> None:
    with DevServer(tmp_path) as dev:
        run = subprocess.run(
            [sys.executable, str(EXAMPLE), "--issuer", dev.issuer, "--ca", str(dev.ca_path)],
            env={**os.environ, "GATEWAY_AUTH_CLIENT_SECRET": DevServer.POST_CLIENT_SECRET},
            capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("mcp-1 GET #1: HTTP 200") and "resumed=False" in lines[0]
    assert lines[1].startswith("mcp-1 GET #2: HTTP 200")
    assert lines[2].startswith("mcp-1: token type Bearer")
    assert lines[3].startswith("tls cache: ")
    assert DevServer.POST_CLIENT_SECRET not in run.stdout + run.stderr
