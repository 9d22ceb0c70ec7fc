"""marimo's `index.html`, filled for the output frame: read mode, no server, our bridge first."""

from __future__ import annotations

import json
from pathlib import Path

_BRIDGE_INLINE = ((Path(__file__).parent / "output_frame.js").read_text(encoding="utf-8")
                  .replace("</script", "<\\/script"))

# marimo's app runs hidden: only its custom elements render, in boxes the bridge places.
_FRAME_CSS = """
html, body { background: transparent !important; margin: 0; padding: 0; }
html { overflow: hidden; }  /* the page sizes the frame to its content: it never scrolls */
#root { display: none !important; }
#mc-outputs { position: relative; }
.mc-output { position: absolute; left: 0; box-sizing: border-box; padding: 6px 12px;
             overflow-x: auto; overflow-y: hidden; }
.mc-output.mc-empty { padding: 0; }
.mc-output[data-status="stale"], .mc-output[data-status="queued"] { opacity: 0.5; }
"""

# An opaque origin however the page is opened, and only ever inside a Jupyter page.
CONTENT_SECURITY_POLICY = (
    "sandbox allow-scripts allow-downloads allow-popups allow-popups-to-escape-sandbox; "
    "frame-ancestors 'self'"
)

THEMES = ("light", "dark")


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


def _mount_config(version: str, theme: str) -> dict:
    return {
        "filename": "", "cwd": "", "code": "", "mode": "read", "version": version,
        "serverToken": "", "config": {"display": {"theme": theme}}, "configOverrides": {},
        "appConfig": {}, "view": {"showAppCode": False}, "notebook": None, "session": None,
        "runtimeConfig": [],
    }


def output_frame_page(index_html: str, version: str, theme: str) -> str:
    """The frame's page: marimo's own, with its placeholders filled and the bridge first."""
    theme = theme if theme in THEMES else "light"
    html = index_html.replace("'{{ mount_config }}'", _script_json(_mount_config(version, theme)))
    for placeholder, value in (("{{ filename }}", ""), ("{{ version }}", version),
                               ("{{ user_config }}", "{}"), ("{{ server_token }}", ""),
                               ("{{ title }}", "marimo outputs")):
        html = html.replace(placeholder, value)
    head = f"<style>{_FRAME_CSS}</style><script>{_BRIDGE_INLINE}</script>"
    return html.replace("<head>", "<head>" + head, 1)
