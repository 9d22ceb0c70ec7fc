"""The output frame's page and assets: marimo's own frontend, sandboxed, public, offline."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import marimo
import pytest

from .servers import ServerProcess


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "root").mkdir()
    (tmp_path / "journal").mkdir()
    proc = ServerProcess(tmp_path / "root", tmp_path / "journal").start()
    yield proc
    proc.stop()


def fetch(url: str) -> tuple[dict, str]:
    with urllib.request.urlopen(url, timeout=30) as response:  # no token: public on purpose
        return dict(response.headers), response.read().decode("utf-8", "replace")


def test_frame_page_is_marimos_own_sandboxed_wherever_it_is_opened(server):
    headers, html = fetch(f"{server.url}marimo-collab/frontend/?theme=dark")
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
    assert "frame-ancestors 'self'" in csp
    assert headers["X-Marimo-Version"] == marimo.__version__
    assert '"mode": "read"' in html and '"theme": "dark"' in html
    assert "{{" not in html  # every placeholder of marimo's page filled
    # our bridge runs before marimo's module scripts
    assert html.index("PageSocket") < html.index('<script type="module"')


def test_frame_assets_are_marimos_and_readable_from_an_opaque_origin(server):
    _, html = fetch(f"{server.url}marimo-collab/frontend/")
    entry = re.search(r'src="\./(assets/index-[^"]+\.js)"', html).group(1)
    headers, body = fetch(f"{server.url}marimo-collab/frontend/{entry}")
    assert headers["Access-Control-Allow-Origin"] == "*"
    wheel = Path(marimo.__file__).parent / "_static" / entry
    assert body == wheel.read_text(encoding="utf-8", errors="replace")


def test_frame_assets_stay_inside_marimos_folder(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(f"{server.url}marimo-collab/frontend/..%2F__init__.py")
    assert refused.value.code in (403, 404)


def test_a_kernel_environment_without_marimo_is_a_clear_503(tmp_path: Path):
    (tmp_path / "root").mkdir()
    (tmp_path / "journal").mkdir()
    proc = ServerProcess(tmp_path / "root", tmp_path / "journal",
                         {"kernel_python": "/bin/false"}).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(f"{proc.url}marimo-collab/frontend/")
        assert refused.value.code == 503
        assert "marimo is not installed for /bin/false" in refused.value.read().decode()
    finally:
        proc.stop()
