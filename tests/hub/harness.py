"""A real JupyterHub on 127.0.0.1 for tests: proxy from npm, DummyAuthenticator, local spawner.

Fixtures `hub`, `tokens` (import hub_fixture, tokens_fixture); `Hub`: REST API; `Peer`: a client.
"""

from __future__ import annotations

import asyncio
import html
import http.cookiejar
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import websockets

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXAMPLE = REPO / "examples" / "demo.py"
CHP = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ("alice", "bob", "carol", "dave", "erin", "hank")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_proxy() -> Path:
    """configurable-http-proxy from tests/hub/package-lock.json (`npm ci` when missing).

    Installed locally, never globally, so the tests need nothing but npm and the registry.
    """
    if not CHP.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install configurable-http-proxy for the hub tests"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True, timeout=600
        )
    assert CHP.exists(), f"{CHP} missing after npm ci"
    return CHP


class Hub:
    """One JupyterHub process and what it started; everything stopped by PID in `stop`.

    `api()` uses the harness service's admin token unless given a user's token.
    """

    def __init__(self, workdir: Path, *, recheck_interval: float = 1.0) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(32)
        self.password = secrets.token_hex(8)
        self.recheck_interval = recheck_interval
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "jupyterhub.log"

    def start(self, timeout: float = 60) -> None:
        """Start the hub and wait until its API answers."""
        env = dict(
            os.environ,
            MC_HUB_DIR=str(self.dir),
            MC_HUB_PORT=str(self.port),
            MC_HUB_API_PORT=str(free_port()),
            MC_PROXY_API_PORT=str(free_port()),
            MC_HUB_ADMIN_TOKEN=self.admin_token,
            MC_HUB_PASSWORD=self.password,
            MC_CHP=str(ensure_proxy()),
            MC_REPO=str(REPO),
            MC_RECHECK_INTERVAL=str(self.recheck_interval),
        )
        env.pop("JUPYTERHUB_API_TOKEN", None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py")],
            cwd=self.dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one at the end
        )
        self._wait(lambda: self._status("/hub/api/") == 200, timeout, "the hub to answer")

    def stop(self) -> None:
        """Stop user servers, proxy and hub, by the PIDs they recorded; SIGKILL stragglers."""
        pids = [int(p.read_text()) for p in (self.dir / "pids").glob("*.pid") if p.read_text()]
        proxy_pid = self.dir / "proxy.pid"
        if proxy_pid.exists() and proxy_pid.read_text().strip():
            pids.append(int(proxy_pid.read_text()))
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)  # the hub stops its servers and proxy
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
            _kill_group(self.process.pid)
        for pid in pids:
            _kill_group(pid)  # spawners start servers in their own session: group = pid

    # --- REST API ------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: object = None, token: str | None = None):
        """Call the hub's REST API; returns (status, parsed JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"token {token or self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, (json.loads(raw) if raw.strip() else None)

    def ok(self, method: str, path: str, body: object = None, token: str | None = None):
        """`api` that insists on a 2xx answer."""
        status, reply = self.api(method, path, body, token)
        assert 200 <= status < 300, f"{method} {path}: {status} {reply}"
        return reply

    def create_users(self, names) -> None:
        """Create users that do not exist yet."""
        status, _ = self.api("POST", "/users", {"usernames": list(names)})
        assert status in (201, 409), status

    def token_for(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token of `user` (default: all of the user's permissions, shares included)."""
        body = {"note": "marimo-collab hub tests"}
        if scopes is not None:
            body["scopes"] = scopes
        return self.ok("POST", f"/users/{user}/tokens", body)["token"]

    def start_server(self, user: str, timeout: float = 90) -> None:
        """Start `user`'s default server and wait until the hub says it is ready."""
        status, reply = self.api("POST", f"/users/{user}/server")
        assert status in (201, 202, 400), (status, reply)  # 400: already running

        def ready() -> bool:
            model = self.ok("GET", f"/users/{user}")
            server = (model.get("servers") or {}).get("")
            return bool(server and server.get("ready"))

        self._wait(ready, timeout, f"{user}'s server")

    def share(self, owner: str, user: str, scopes: list[str], token: str) -> dict:
        """`owner` shares their default server with `user` (using the owner's token)."""
        return self.ok("POST", f"/shares/{owner}/", {"user": user, "scopes": scopes}, token)

    def share_with_group(self, owner: str, group: str, scopes: list[str], token: str) -> dict:
        """`owner` shares their default server with a hub group."""
        return self.ok("POST", f"/shares/{owner}/", {"group": group, "scopes": scopes}, token)

    def revoke(self, owner: str, user: str, token: str, scopes: list[str] | None = None) -> None:
        """Revoke some (or all) scopes `owner` shared with `user`."""
        body: dict = {"user": user}
        if scopes is not None:
            body["scopes"] = scopes
        self.ok("PATCH", f"/shares/{owner}/", body, token)

    def home(self, user: str) -> Path:
        """The user's home directory, which is their server's root."""
        return self.dir / "home" / user

    def ws_url(self, owner: str, path: str) -> str:
        """The collaboration socket of a notebook on `owner`'s server, through the proxy."""
        return f"ws://127.0.0.1:{self.port}/user/{owner}/api/marimo-collab/ws?path={quote(path)}"

    # --- helpers ------------------------------------------------------------------------------

    def _status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited; log:\n{self.tail_log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}; log:\n{self.tail_log()}")
            time.sleep(0.1)

    def tail_log(self, lines: int = 60) -> str:
        """The end of the hub's log (tokens are not in it: the hub never logs them)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Browser:
    """A cookie-keeping HTTP client that logs in and goes through the server's OAuth like a browser.

    `cookie_header()` then authenticates a WebSocket the way JupyterLab's does.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path_or_url: str) -> tuple[str, str]:
        """GET, following redirects; returns (final URL, body)."""
        url = path_or_url if "://" in path_or_url else self.hub.url + path_or_url
        with self.opener.open(url, timeout=60) as response:
            return response.geturl(), response.read().decode("utf-8", "replace")

    def post(self, url: str, fields: list[tuple[str, str]]) -> tuple[str, str]:
        """POST a form, following redirects; returns (final URL, body)."""
        request = urllib.request.Request(url, data=urlencode(fields).encode(), method="POST")
        with self.opener.open(request, timeout=60) as response:
            return response.geturl(), response.read().decode("utf-8", "replace")

    def login(self, user: str) -> None:
        """Log in to the hub (DummyAuthenticator password), landing on /hub/home, not a spawn."""
        url, page = self.get("/hub/login?next=%2Fhub%2Fhome")
        fields = [("username", user), ("password", self.hub.password)]
        url, _ = self.post(url, fields + _hidden_inputs(page, "_xsrf"))
        assert url.endswith("/hub/home"), url

    def open_server(self, owner: str) -> str:
        """Visit `owner`'s server: OAuth with the hub, accepting its consent page if shown."""
        url, page = self.get(f"/user/{owner}/lab")
        if "/hub/api/oauth2/authorize" in url:
            fields = _hidden_inputs(page, "_xsrf") + _hidden_inputs(page, "scopes")
            url, page = self.post(url, fields)
        assert url.startswith(f"{self.hub.url}/user/{owner}/"), url
        return url

    def cookie_header(self, owner: str) -> str:
        """The Cookie header a browser sends to `owner`'s server."""
        request = urllib.request.Request(f"{self.hub.url}/user/{owner}/api/marimo-collab/ws")
        self.jar.add_cookie_header(request)
        return request.get_header("Cookie") or ""


def _hidden_inputs(page: str, name: str) -> list[tuple[str, str]]:
    pattern = rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"'
    return [(name, html.unescape(value)) for value in re.findall(pattern, page)]


def _kill_group(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)


class Peer:
    """A minimal protocol client over `websockets` (docs/protocol.md); keeps what it receives.

    `request` sends a message with a fresh id and returns its response.
    """

    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.received: list[dict] = []
        self.closed: tuple[int | None, str | None] | None = None

    @classmethod
    async def connect(cls, url: str, token: str) -> Peer:
        """Open the socket with `Authorization: token ...` (how scripts authenticate)."""
        ws = await websockets.connect(
            url, additional_headers={"Authorization": f"token {token}"}, open_timeout=30
        )
        return cls(ws)

    @classmethod
    async def connect_as_browser(cls, url: str, browser: Browser, owner: str) -> Peer:
        """Open the socket with the browser's cookies, Origin and fetch mode, like JupyterLab."""
        headers = {
            "Cookie": browser.cookie_header(owner),
            "Origin": browser.hub.url,
            "Sec-Fetch-Mode": "websocket",
            "Sec-Fetch-Site": "same-origin",
        }
        ws = await websockets.connect(url, additional_headers=headers, open_timeout=30)
        return cls(ws)

    async def request(self, message: dict, timeout: float = 30) -> dict:
        """Send `message` with a new id and wait for its response."""
        message = {**message, "id": next(self.ids)}
        await self.ws.send(json.dumps(message))
        return await self.next(
            lambda m: m.get("type") == "response" and m.get("in_reply") == message["id"],
            timeout,
        )

    async def join(self) -> dict:
        """Join the room; the `ok` response carries the whole state."""
        return await self.request({"type": "join", "peer_id": str(uuid.uuid4())})

    async def next(self, predicate, timeout: float = 30) -> dict:
        """The next received message matching `predicate`; others are kept in `received`."""

        async def wait() -> dict:
            while True:
                message = json.loads(await self.ws.recv())
                self.received.append(message)
                if predicate(message):
                    return message

        return await asyncio.wait_for(wait(), timeout)

    async def wait_closed(self, timeout: float = 30) -> tuple[int | None, str | None]:
        """Read until the server closes the socket; returns (close code, reason)."""

        async def drain() -> None:
            try:
                while True:
                    self.received.append(json.loads(await self.ws.recv()))
            except websockets.ConnectionClosed:
                pass

        await asyncio.wait_for(drain(), timeout)
        self.closed = (self.ws.close_code, self.ws.close_reason)
        return self.closed

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture(scope="session", name="hub")
def hub_fixture(tmp_path_factory):
    """A running hub with USERS (hank in group crew), alice's server up, the example notebook.

    Stopped (by PID) at the end of the session.
    """
    hub = Hub(tmp_path_factory.mktemp("jupyterhub"))
    try:
        hub.start()
        hub.create_users(USERS)
        home = hub.home("alice")
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE, home / "demo.py")
        hub.start_server("alice")
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="session", name="tokens")
def tokens_fixture(hub) -> dict[str, str]:
    """One API token per user, carrying all of that user's permissions (shares included)."""
    return {user: hub.token_for(user) for user in USERS}
