"""Shared fixtures: a real jupyter_server with the extension, and protocol clients on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marimo_collab_ext.client import CollabClient

pytest_plugins = ["pytest_jupyter.jupyter_server"]

HERE = Path(__file__).parent
EXAMPLE = HERE.parent / "examples" / "demo.py"


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    path.mkdir()
    return path


@pytest.fixture
def collab_settings() -> dict:
    """Per-test overrides of `c.MarimoCollab` (fast autosave and disk polling for tests)."""
    return {}


@pytest.fixture
def jp_server_config(journal_dir: Path, collab_settings: dict, request):
    settings = {"journal_dir": str(journal_dir), "autosave_delay": 0.2,
                "disk_poll_interval": 0.2, "room_idle_timeout": 0.5}
    settings.update(collab_settings)
    server_app = {"jpserver_extensions": {"marimo_collab_ext": True}}
    if request.node.get_closest_marker("people"):  # several people: tests/identities.py
        server_app["identity_provider_class"] = "tests.identities.TokenPerPerson"
        server_app["authorizer_class"] = "tests.identities.RightsPerPerson"
    return {"ServerApp": server_app, "MarimoCollab": settings}


@pytest.fixture
def as_user(server, notebook, jp_asyncio_loop):
    """Factory: `await as_user("rita")` joins the example notebook as that person
    (`people` mark: tests/identities.py)."""
    clients: list[CollabClient] = []

    async def _as(username: str) -> CollabClient:
        client = await CollabClient.connect(server["url"], notebook, token=f"{username}-token")
        clients.append(client)
        return client
    yield _as
    for client in clients:
        jp_asyncio_loop.run_until_complete(client.close())


@pytest.fixture
def server_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(root, journal dir) for a subprocess server (tests/servers.py), the example inside."""
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    shutil.copy(EXAMPLE, root / "demo.py")
    return root, journal


@pytest.fixture
def notebook(jp_root_dir: Path) -> str:
    """The example notebook copied into the server root; its path relative to the root."""
    shutil.copy(EXAMPLE, jp_root_dir / "demo.py")
    return "demo.py"


@pytest.fixture
def server(jp_serverapp, http_server_client, jp_http_port, jp_base_url) -> dict:
    """URL and token of the running server."""
    return {"url": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
            "token": jp_serverapp.identity_provider.token, "app": jp_serverapp}


@pytest.fixture
def connect(server, notebook, jp_asyncio_loop):
    """Factory: `await connect()` joins the example notebook as a new peer."""
    clients: list[CollabClient] = []

    async def _connect(path: str = notebook, token: str | None = None, **kwargs):
        client = await CollabClient.connect(server["url"], path,
                                            token=token or server["token"], **kwargs)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        jp_asyncio_loop.run_until_complete(client.close())
