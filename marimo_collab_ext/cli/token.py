"""Where the CLI finds its token: environment or a token file, the command line only if asked.

The token is only ever sent in the `Authorization: token ...` header, never printed or logged.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

# In order: ours, then what JupyterHub puts in a single-user server's environment, then Jupyter's.
TOKEN_VARIABLES = ("MARIMO_COLLAB_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTER_TOKEN")


class TokenError(Exception):
    """The token could not be read (the message never contains the token)."""


def resolve_token(token: str | None = None, token_file: str | None = None,
                  environ: dict | None = None, warn=None) -> tuple[str | None, str]:
    """The token to send and where it came from (for messages: a source, never the value).

    Precedence: --token, --token-file, then the variables of TOKEN_VARIABLES, in order.
    """
    warn = warn or (lambda text: print(text, file=sys.stderr))
    environ = os.environ if environ is None else environ
    if token:
        # Anyone on the machine can read another process's arguments (ps, /proc/*/cmdline).
        warn("warning: --token is visible in the process list; prefer MARIMO_COLLAB_TOKEN"
             " or --token-file")
        return token, "--token"
    if token_file:
        return _read_token_file(Path(token_file).expanduser(), warn), f"--token-file {token_file}"
    for name in TOKEN_VARIABLES:
        if environ.get(name):
            return environ[name].strip(), f"${name}"
    return None, "none"


def _read_token_file(path: Path, warn) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"cannot read token file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"warning: token file {path} is readable by other users (chmod 600 {path})")
    if not text:
        raise TokenError(f"token file {path} is empty")
    return text.splitlines()[0].strip()
