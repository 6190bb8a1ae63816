"""The built distributions carry the component itself (not a link to the repository)
and the typing marker, and the package works from the wheel alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
COMPONENT = PACKAGE.parent / "host" / "component" / "gateway_auth.wasm"


def build(kind: str, out: Path) -> Path:
    """Builds a wheel or an sdist with the environment's setuptools (no download)."""
    run = subprocess.run(
        [sys.executable, "-c",
         f"from setuptools import build_meta; print(build_meta.build_{kind}({str(out)!r}))"],
        cwd=PACKAGE, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return out / run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("wheel", tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_the_component_bytes_and_the_typing_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "gateway_auth/py.typed" in names
        assert archive.read("gateway_auth/gateway_auth.wasm") == COMPONENT.read_bytes()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: wasmtime==50.0.1" in metadata


def test_the_sdist_holds_the_component_bytes(tmp_path: Path) -> None:
    sdist = build("sdist", tmp_path)
    with tarfile.open(sdist) as archive:
        # gateway-auth-0.1.0/ or, with newer setuptools (PEP 625), gateway_auth-0.1.0/
        member = next(m for m in archive.getmembers()
                      if m.name.endswith("-0.1.0/gateway_auth/gateway_auth.wasm"))
        assert member.isfile(), "a link would point outside the sdist"
        extracted = archive.extractfile(member)
        assert extracted is not None and extracted.read() == COMPONENT.read_bytes()


def test_the_package_works_from_the_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    probe = ("import gateway_auth, sys; "
             "p = gateway_auth.Plugin(); s = p.stats(); "
             "print(gateway_auth.__file__); print(s.capacity)")
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    where, capacity = run.stdout.split()
    assert Path(where).is_relative_to(site)
    assert int(capacity) > 0


def test_a_component_given_by_path_loads_and_garbage_is_a_host_error(tmp_path: Path) -> None:
    import gateway_auth as ga
    with ga.Plugin(component=str(COMPONENT)) as plugin:
        assert plugin.stats().size == 0
    with pytest.raises(ga.HostError, match="loading the component"):
        ga.Plugin(component=b"not a component")
    with pytest.raises(ga.HostError, match="no-such.wasm"):
        ga.Plugin(component=str(tmp_path / "no-such.wasm"))
