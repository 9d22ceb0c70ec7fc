"""The one door to marimo internals: launch an IPC kernel, speak its wire.

Everything else in the project talks to marimo through this module only.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import marimo
import msgspec
from marimo._ast.app_config import _AppConfig
from marimo._ast.cell import CellConfig
from marimo._config.config import MarimoConfig
from marimo._config.manager import get_default_config_manager
from marimo._internal.commands import (
    AppMetadata,
    CreateNotebookCommand,
    EditCellsCommand,
    ExecuteCellCommand,
    ExecuteCellsCommand,
    InvokeFunctionCommand,
    ModelCommand,
    ModelMessage,
    UpdateUIElementCommand,
)
from marimo._internal.ipc import KernelArgs, QueueManager

from .model import CellCode, FunctionCall, KernelStartError, ModelWrite

log = logging.getLogger(__name__)

# Wire structs and notification shapes were read from marimo 0.25; other
# minors may change them without notice, so refuse rather than misbehave.
SUPPORTED_MINOR = (0, 25)
HOST_MARIMO_VERSION: str = marimo.__version__

_VERSION_PROBE = "import importlib.metadata as m; print(m.version('marimo'))"
# `python -m marimo._ipc.launch_kernel`, less the implicit sys.path[0] entry for the kernel's
# cwd, the notebook's folder: a notebook named markdown.py (`marimo tutorial markdown`) would
# shadow a module marimo imports while loading. marimo's kernel itself then puts the notebook's
# folder on sys.path for the user's code, as under `marimo edit`. (`-P` would need Python 3.11.)
_LAUNCH_KERNEL = (
    "import sys\n"
    "if sys.path[:1] == [''] and not getattr(sys.flags, 'safe_path', False):\n"
    "    del sys.path[0]\n"
    "import runpy\n"
    "runpy.run_module('marimo._ipc.launch_kernel', run_name='__main__', alter_sys=True)\n"
)
_STDERR_TAIL_LINES = 40


# The server's own credentials: in a shared room anyone with the runner role runs code in the
# kernel, and must not find the owner's Jupyter / JupyterHub tokens in its environment.
_SECRET_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTER_TOKEN", "JUPYTERHUB_OAUTH_",
               "JUPYTERHUB_COOKIE_", "MARIMO_COLLAB_TOKEN")


def kernel_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The kernel's environment: the server's, less its credentials.

    Code still runs as the server's user; see docs/security.md for that trust boundary.
    """
    return {k: v for k, v in environ.items() if not k.startswith(_SECRET_ENV)}


def check_version(version: str) -> None:
    """Raise KernelStartError unless `version` is a marimo we speak (0.25.x).

    Both ends must agree: KernelArgs and commands are encoded by our marimo.
    """
    parts = version.split(".")
    try:
        minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        minor = None
    if minor != SUPPORTED_MINOR:
        want = ".".join(map(str, SUPPORTED_MINOR)) + ".x"
        raise KernelStartError(
            f"marimo {version} in the kernel environment is not supported "
            f"(marimo-collab needs marimo {want})"
        )


def kernel_marimo_version(python: str, timeout: float) -> str:
    """Return the marimo version installed for `python` (blocking).

    Our own interpreter answers without a subprocess.
    """
    if python == sys.executable:
        return HOST_MARIMO_VERSION
    try:
        done = subprocess.run(
            [python, "-c", _VERSION_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as e:
        raise KernelStartError(f"Python executable not found: {python}") from e
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelStartError(f"Could not run {python}: {e}") from e
    if done.returncode != 0:
        raise KernelStartError(f"marimo is not installed for {python}")
    return done.stdout.strip()


def _cell_config(config: dict[str, Any]) -> CellConfig:
    return CellConfig.from_dict(config, warn=False)


def create_notebook(cells: Iterable[CellCode]) -> CreateNotebookCommand:
    """Register the whole notebook without running it (marimo's lazy open).

    Markdown cells are rendered by the kernel at once, as marimo edit does.
    """
    cells = list(cells)
    return CreateNotebookCommand(
        execution_requests=tuple(ExecuteCellCommand(cell_id=c.id, code=c.code) for c in cells),
        cell_ids=tuple(c.id for c in cells),
        set_ui_element_value_request=UpdateUIElementCommand(object_ids=[], values=[]),
        auto_run=False,
    )


def execute(cells: Iterable[CellCode]) -> ExecuteCellsCommand:
    """Run these cells with this code; marimo reruns their dependents."""
    cells = list(cells)
    return ExecuteCellsCommand(cell_ids=[c.id for c in cells], codes=[c.code for c in cells])


def edit(
    codes: dict[str, str], configs: dict[str, dict[str, Any]], delete_ids: list[str]
) -> EditCellsCommand:
    """Register edited code and configs, and delete cells, without running.

    This is the command marimo's own host sends when a notebook changes.
    """
    return EditCellsCommand(
        codes=codes,
        configs={k: _cell_config(v).asdict() for k, v in configs.items()},
        delete_ids=delete_ids,
    )


def update_ui(values: dict[str, Any]) -> UpdateUIElementCommand:
    """Set UI elements' values, as browser interactions would."""
    return UpdateUIElementCommand(object_ids=list(values), values=list(values.values()))


def invoke_function(call: FunctionCall) -> InvokeFunctionCommand:
    """Call a function a UI element registered (table paging, search...).

    The kernel answers with a `function-call-result` notification carrying `call.call_id`.
    """
    return InvokeFunctionCommand(function_call_id=call.call_id, namespace=call.namespace,
                                 function_name=call.function_name, args=call.args)


def model_message(write: ModelWrite) -> ModelCommand:
    """A widget model update or custom message, as marimo's frontend posts it."""
    if write.method == "update":
        wire = {"method": "update", "state": write.state, "bufferPaths": write.buffer_paths}
    else:
        wire = {"method": "custom", "content": write.content}
    return ModelCommand(model_id=write.model_id, message=msgspec.convert(wire, ModelMessage),
                        buffers=[base64.b64decode(b) for b in write.buffers])


def _kernel_args(
    cells: list[CellCode],
    notebook_path: str | None,
    app_config: dict[str, Any],
    info: Any,
    config: MarimoConfig,
) -> KernelArgs:
    return KernelArgs(
        configs={c.id: _cell_config(c.config) for c in cells},
        app_metadata=AppMetadata(
            query_params={},
            cli_args={},
            app_config=_AppConfig.from_untrusted_dict(app_config, silent=True),
            filename=notebook_path,
        ),
        user_config=config,
        log_level=logging.WARNING,
        profile_path=None,
        connection_info=info,
        is_run_mode=False,
        redirect_console_to_browser=True,
        # The kernel polls this pid and exits when the server dies.
        parent_pid=os.getpid(),
        # No /@file endpoint here: marimo inlines virtual files as data URLs.
        virtual_file_storage=None,
    )


class KernelProcess:
    """One running `marimo._ipc.launch_kernel` (as `python -m` would) and its ZeroMQ queues.

    Thread callbacks are handed to the event loop; nothing here blocks it.
    """

    def __init__(
        self,
        *,
        python: str,
        cwd: str,
        notebook_path: str | None,
        app_config: dict[str, Any],
        cells: list[CellCode],
        loop: asyncio.AbstractEventLoop,
        on_messages: Callable[[KernelProcess, list[tuple[str, dict[str, Any]]]], None],
        on_exit: Callable[[KernelProcess, int], None],
    ) -> None:
        self._loop = loop
        self._on_messages = on_messages
        self._on_exit = on_exit
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        # Only _watch_exit reaps the process, under this lock, after killing its
        # group: a pid is never signalled once it could belong to someone else.
        self._reap_lock = threading.Lock()
        self._reaped = False
        self._exited = threading.Event()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self.returncode: int | None = None

        config = get_default_config_manager(current_path=notebook_path).get_config(
            hide_secrets=False
        )
        # Whether marimo reruns the dependents of a cell that runs ("autorun"), or only
        # marks them stale ("lazy").
        self.autorun: bool = config["runtime"].get("on_cell_change", "autorun") == "autorun"
        self._queues, info = QueueManager.create()
        args = _kernel_args(cells, notebook_path, app_config, info, config)
        try:
            # Never start_new_session: the kernel calls setsid() itself and a
            # second setsid makes it die at startup (DESIGN.md, marimo facts).
            self._proc = subprocess.Popen(
                [python, "-c", _LAUNCH_KERNEL],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=kernel_environment(os.environ),
            )
        except OSError as e:
            self._queues.close_queues()
            raise KernelStartError(f"Could not launch {python}: {e}") from e
        self.pid = self._proc.pid
        for target in (self._drain_stdout, self._drain_stderr, self._watch_exit, self._read):
            threading.Thread(target=target, daemon=True, name=f"marimo-kernel-{self.pid}").start()
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(args.encode_json())
            self._proc.stdin.close()
        except OSError:
            pass  # The kernel died at once; _watch_exit reports it.

    # -- threads -----------------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # The event loop is closed: nobody is listening any more.

    def _set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _drain_stdout(self) -> None:
        # Keep reading for the kernel's whole life: a full pipe would block it.
        assert self._proc.stdout is not None
        with self._proc.stdout as pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                if line == "KERNEL_READY":
                    self._call(self._set_ready)
                elif line:
                    log.debug("kernel %s stdout: %s", self.pid, line)

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        with self._proc.stderr as pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                self.stderr_tail.append(line)
                log.debug("kernel %s stderr: %s", self.pid, line)

    def _watch_exit(self) -> None:
        if hasattr(os, "waitid"):
            # Wait without reaping: while the leader is a zombie its pid (and so
            # its group id) cannot be reused, so the group kill hits only leftovers.
            try:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                pass
            with self._reap_lock:
                self._signal_group(signal.SIGKILL)
                code = self._proc.wait()
                self._reaped = True
        else:
            code = self._proc.wait()
            self._reaped = True
        self.returncode = code
        self._exited.set()
        self._call(self._on_exit, self, code)

    def _signal_group(self, sig: int) -> bool:
        # The kernel leads its own group once it has called setsid().
        try:
            os.killpg(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _read(self) -> None:
        # marimo's receiver thread fills a queue.Queue. Decode here, off the event
        # loop (outputs can be megabytes), and hand over in batches: one wake-up each.
        stream = self._queues.stream_queue
        while not self._closed.is_set():
            try:
                raw = [stream.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(raw) < 256:
                try:
                    raw.append(stream.get_nowait())
                except queue.Empty:
                    break
            batch = []
            for message in raw:
                try:
                    data = json.loads(message)
                    batch.append((data.pop("op"), data))
                except (ValueError, KeyError, AttributeError, TypeError):
                    log.warning("kernel %s: undecodable message dropped", self.pid)
            self._call(self._on_messages, self, batch)

    # -- commands ----------------------------------------------------------

    def send(self, command: Any) -> None:
        """Put one command on the queue marimo reads it from.

        UI and model updates also go to the ui queue, which batches them (marimo routes so).
        """
        self._queues.control_queue.put(command)
        if isinstance(command, (UpdateUIElementCommand, ModelCommand)):
            self._queues.set_ui_element_queue.put(command)

    def send_input(self, text: str) -> None:
        """Answer the `input()` the kernel is blocked in."""
        self._queues.input_queue.put(text)

    def alive(self) -> bool:
        return not self._exited.is_set()

    def interrupt(self) -> None:
        """SIGINT to the kernel's process group, so user subprocesses stop too.

        Before the kernel's setsid() there is no group and nothing to interrupt yet;
        a bare SIGINT then would kill the booting kernel.
        """
        with self._reap_lock:
            if not self._reaped:
                self._signal_group(signal.SIGINT)

    def kill(self) -> None:
        """Kill the kernel and everything in its process group; close the queues.

        Safe to call twice and from any state.
        """
        with self._reap_lock:
            if not self._reaped:
                if not self._signal_group(signal.SIGKILL):
                    # Still booting, not yet a group leader. os.kill, not Popen.kill:
                    # that one polls, and reaping here would free the pid too early.
                    try:
                        os.kill(self.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        # Closing the ZeroMQ context twice hangs in zmq_ctx_term: close once only.
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._queues.close_queues()

    def wait(self, timeout: float) -> int | None:
        """Wait (blocking) for the process to be gone and reaped; its exit code or None."""
        self._exited.wait(timeout)
        return self.returncode
