"""The Jupyter Server extension: configuration (`c.MarimoCollab.*`) and handler registration."""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate

from .frontend.handlers import OutputFrameAssetHandler, OutputFramePageHandler
from .handlers import CollabSocketHandler
from .room.manager import RoomManager


def _default_journal_dir() -> str:
    # Local disk outside the user's home: SQLite on NFS homes corrupts. /var/tmp survives reboots.
    base = "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()
    return str(Path(base) / f"marimo-collab-{getpass.getuser()}")


class MarimoCollab(ExtensionApp):
    """Serves one collaborative room per marimo notebook on `api/marimo-collab/ws`."""

    name = "marimo_collab_ext"
    load_other_extensions = True

    journal_dir = Unicode(
        help="Directory of the crash journals (SQLite). Keep it on local disk, not NFS.",
    ).tag(config=True)

    @default("journal_dir")
    def _journal_dir_default(self) -> str:
        return _default_journal_dir()

    journal_fsync = Bool(
        False,
        help="fsync every journal commit. Off, an acknowledged edit survives a killed server;"
        " on, it also survives a power loss, at about a millisecond per edit.",
    ).tag(config=True)
    autosave_delay = Float(
        1.5, help="Seconds of quiet after an edit before the notebook is written to disk."
    ).tag(config=True)
    autosave_max_delay = Float(
        20.0, help="Longest time an edit waits for autosave while people keep typing."
    ).tag(config=True)
    disk_poll_interval = Float(
        2.0, help="Seconds between checks for changes to the notebook file made by other programs."
    ).tag(config=True)
    room_idle_timeout = Float(
        60.0, help="Seconds a room with nobody in it stays loaded before it is saved and freed."
    ).tag(config=True)
    max_history = Int(
        2000, help="Accepted pushes kept per cell for catch-up; older ones are dropped."
    ).tag(config=True)
    history_limit = Int(
        1000, help="Most authorship records one `history` answer carries (the newest ones)."
    ).tag(config=True)
    history_bytes = Int(
        64 * 1024 * 1024, help="Bytes of past cell text (what each edit replaced), and as many of"
        " past structure, each notebook's journal keeps for cell history, blame and notebook"
        " restore; the oldest go first. 0 keeps none."
    ).tag(config=True)
    max_suggestions = Int(
        200, help="Most pending suggestions a notebook holds; more are refused (too_large)."
    ).tag(config=True)
    max_suggestion_units = Int(
        100_000, help="Largest suggested text, in UTF-16 code units."
    ).tag(config=True)
    max_message_bytes = Int(
        4 * 1024 * 1024, help="Largest WebSocket frame accepted; larger frames close with 1009."
    ).tag(config=True)
    max_cell_units = Int(
        1_000_000, help="Largest cell source, in UTF-16 code units."
    ).tag(config=True)
    max_notebook_units = Int(
        16_000_000, help="Largest notebook (all cells), in UTF-16 code units."
    ).tag(config=True)
    max_cells = Int(5000, help="Most cells a notebook may have.").tag(config=True)
    rate_limit = Float(
        300.0, help="Messages per second one connection may send (sustained)."
    ).tag(config=True)
    rate_burst = Int(1000, help="Messages one connection may send in a burst.").tag(config=True)
    heartbeat_timeout = Float(
        150.0, help="A peer silent for this many seconds is dropped from the room (browsers"
        " throttle timers in background tabs to about one a minute, so keep this well above)."
    ).tag(config=True)
    role_recheck_interval = Float(
        5.0, help="Seconds between re-checks of each connection's permissions."
    ).tag(config=True)
    role_recheck_grace = Float(
        60.0, help="How long a connection keeps its role while JupyterHub cannot be asked."
    ).tag(config=True)
    owner = Unicode(
        "", help="Username never narrowed by the lists below (default: $JUPYTERHUB_USER, or on a"
        " plain server everyone Jupyter's own token or password lets in)."
    ).tag(config=True)

    kernel_python = Unicode(
        sys.executable, help="Python executable that runs marimo kernels (the user's environment)."
    ).tag(config=True)
    kernel_start_on_join = Bool(
        False, help="Start the kernel when the first peer joins instead of on the first run."
    ).tag(config=True)
    kernel_idle_timeout = Float(
        600.0, help="Seconds a kernel lives on after the last peer left its room."
    ).tag(config=True)
    kernel_startup_timeout = Float(60.0, help="Seconds to wait for a kernel to start.").tag(
        config=True
    )
    max_output_bytes = Int(
        5 * 1024 * 1024, help="Outputs larger than this are replaced by a placeholder."
    ).tag(config=True)

    default_role = Unicode(
        "runner",
        help="Most a user other than the server's owner may do: viewer, editor, runner, or"
        " none (only the owner gets in). Only narrows what the Authorizer grants.",
    ).tag(config=True)
    @validate("default_role")
    def _check_default_role(self, proposal) -> str:
        value = proposal["value"].strip().lower()
        if value not in ("viewer", "editor", "runner", "none"):
            raise TraitError(f"default_role must be viewer, editor, runner or none, not {value!r}")
        return value

    viewers = List(Unicode(), help="Usernames limited to viewing.").tag(config=True)
    editors = List(Unicode(), help="Usernames limited to editing (no running).").tag(config=True)
    runners = List(Unicode(), help="Usernames allowed to run.").tag(config=True)
    viewer_groups = List(Unicode(), help="JupyterHub groups limited to viewing.").tag(config=True)
    editor_groups = List(Unicode(), help="JupyterHub groups limited to editing.").tag(config=True)
    runner_groups = List(Unicode(), help="JupyterHub groups allowed to run.").tag(config=True)

    def initialize_settings(self) -> None:
        self.room_manager = RoomManager(
            config=self, contents_manager=self.serverapp.contents_manager,
            root_dir=self.serverapp.root_dir, log=self.log)
        self.settings["marimo_collab"] = self

    def initialize_handlers(self) -> None:
        self.handlers.append((r"/api/marimo-collab/ws", CollabSocketHandler))
        # The notebook's output frame: marimo's compiled frontend (docs/widgets.md).
        self.handlers.append((r"/marimo-collab/frontend/", OutputFramePageHandler))
        self.handlers.append((r"/marimo-collab/frontend/(.+)", OutputFrameAssetHandler,
                              {"path": "."}))

    async def stop_extension(self) -> None:
        await self.room_manager.shutdown()
