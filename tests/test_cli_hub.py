"""The `marimo-collab` command through a real JupyterHub 6.1: API tokens in the header only."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.hub.harness import hub_fixture, tokens_fixture  # noqa: F401 - fixtures
from tests.test_cli import SCRIPT, Lines, env_with

pytestmark = pytest.mark.hub


def hub_cli(hub, *args: str, env: dict, timeout: float = 120):
    return subprocess.run([*SCRIPT, *args[:1], "--server", f"{hub.url}/user/alice/", *args[1:]],
                          env=env, capture_output=True, text=True, timeout=timeout)


def hub_env(token: str | None) -> dict:
    env = env_with(None)
    if token:
        env["JUPYTERHUB_API_TOKEN"] = token  # what a JupyterHub user server's terminal has
    return env


def test_save_and_run_with_a_hub_api_token(hub, tokens):
    result = hub_cli(hub, "save", "demo.py", env=hub_env(tokens["alice"]))
    assert result.returncode == 0, result.stderr
    result = hub_cli(hub, "run", "demo.py", "-1", env=hub_env(tokens["alice"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "largest square:" in result.stdout
    assert tokens["alice"] not in result.stdout + result.stderr


def test_no_token_or_a_user_without_access_is_refused(hub, tokens):
    result = hub_cli(hub, "save", "demo.py", env=hub_env(None))
    assert result.returncode == 2 and "HTTP 403" in result.stderr
    result = hub_cli(hub, "save", "demo.py", env=hub_env(tokens["dave"]))
    assert result.returncode == 2 and "HTTP 403" in result.stderr
    assert tokens["dave"] not in result.stderr


def test_mirror_through_the_hub(hub, tokens, tmp_path):
    local = tmp_path / "alice.py"
    token_file = tmp_path / "token"
    token_file.write_text(tokens["alice"])
    token_file.chmod(0o600)

    class HubLive:
        url = f"{hub.url}/user/alice/"
        token = tokens["alice"]

    mirror = Lines(HubLive, "mirror", "demo.py", str(local), "--poll", "0.05",
                   "--token-file", str(token_file))
    try:
        mirror.wait_for("mirroring demo.py <-> ")
        local.write_text(local.read_text().replace("largest square:", "hub square:"))
        mirror.wait_for("sent: 1 cell(s) edited")
        deadline = time.monotonic() + 20
        home_file = hub.home("alice") / "demo.py"
        while "hub square:" not in home_file.read_text():
            assert time.monotonic() < deadline, "the server never saved the mirrored edit"
            time.sleep(0.1)
    finally:
        assert mirror.stop() == 130
