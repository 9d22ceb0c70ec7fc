"""The Jupyter Server extension: configuration (`c.MarimoCollab.*`) and handler registration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate

from .auth.hub_authorizer import HubScopeAuthorizer
from .frontend.handlers import OutputFrameAssetHandler, OutputFramePageHandler
from .grants.handlers import AuditHandler, ClaimHandler, GrantsHandler, LinksHandler
from .grants.hub_shares import HubShares
from .grants.lab_guard import guard_lab_handlers
from .grants.store import GrantStore, default_grants_file
from .handlers import CollabSocketHandler
from .persistence.journal import Journal
from .room.flow import Flow
from .room.manager import RoomManager, journal_dir_problem


def _default_journal_dir() -> str:
    # The user's own state directory (XDG): a fixed name in a shared place such as /var/tmp
    # can be taken first by another local user. On NFS homes, set journal_dir to local disk.
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return str(base / "marimo-collab" / "journal")


class MarimoCollab(ExtensionApp):
    """Serves one collaborative room per marimo notebook on `api/marimo-collab/ws`."""

    name = "marimo_collab_ext"
    load_other_extensions = True

    journal_dir = Unicode(
        help="Directory of the crash journals (SQLite), created 0700; one owned by another user,"
        " writable by others or a symlink is refused. Default: $XDG_STATE_HOME/marimo-collab/"
        "journal or ~/.local/state/marimo-collab/journal. Keep it on local disk, not NFS.",
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
    save_attempts = Int(
        8, help="Tries of one save while other programs keep changing the file: each finds a"
        " change, merges it and tries again; past this the save fails (save_failed) and retries"
        " later."
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
    max_history_units = Int(
        2_000_000, help="Weight of the history kept per cell for catch-up, in UTF-16 units of"
        " inserted text plus 64 per update; older pushes are dropped (peers behind them re-join)."
    ).tag(config=True)
    max_room_history_units = Int(
        16_000_000, help="Weight of all cells' history in one notebook; past it the oldest"
        " pushes of the notebook are dropped first, down to 90% of it."
    ).tag(config=True)
    journal_checkpoint_entries = Int(
        1000, help="Journal entries after which the journal restarts from a snapshot even"
        " without a save, so a restart replays at most about this many."
    ).tag(config=True)
    journal_checkpoint_bytes = Int(
        32 * 1024 * 1024, help="Bytes of journal entries after which the journal restarts"
        " from a snapshot even without a save."
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
    # Connection budgets (docs/security.md, "Limits"); the owner is one user like any other.
    user_rate_limit = Float(
        600.0, help="Messages per second one user may send over all their connections."
    ).tag(config=True)
    user_rate_burst = Int(
        2000, help="Messages one user may send in a burst over all their connections."
    ).tag(config=True)
    max_connections_per_user = Int(
        32, help="Open room sockets one user may have; more are refused with HTTP 429."
    ).tag(config=True)
    max_queued_bytes = Int(
        64 * 1024 * 1024, help="Bytes the server queues for a peer that reads too slowly;"
        " past this it is dropped (close 4429). A message to an empty queue always goes."
    ).tag(config=True)
    max_queued_bytes_per_user = Int(
        128 * 1024 * 1024, help="Bytes queued for all of one user's connections; past this"
        " the user's connection furthest behind is dropped (close 4429)."
    ).tag(config=True)
    max_queued_bytes_total = Int(
        512 * 1024 * 1024, help="Bytes queued for all connections of the server; past this"
        " the connection furthest behind is dropped (close 4429)."
    ).tag(config=True)
    cursor_interval = Float(
        0.05, help="Seconds between relays of one room's cursors: the latest cursor of each"
        " peer goes out, so fan-out does not grow with one peer's send rate."
    ).tag(config=True)
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
        False, help="Start the kernel when a runner joins instead of on the first run."
    ).tag(config=True)
    kernel_idle_timeout = Float(
        600.0, help="Seconds a kernel lives on after the last peer left its room."
    ).tag(config=True)
    kernel_startup_timeout = Float(60.0, help="Seconds to wait for a kernel to start.").tag(
        config=True
    )
    kernel_max = Int(
        10, help="Most kernels running at once on this server (0: no limit). Beyond it a run that"
        " would start one is refused with kernel_error; the owner is never refused, but counts."
    ).tag(config=True)
    kernel_max_per_user = Int(
        3, help="Most kernels one person (other than the owner) may have started that still run"
        " (0: no limit)."
    ).tag(config=True)
    kernel_cull_idle_timeout = Float(
        3600.0, help="Seconds a kernel lives without a run or UI activity, even with people in"
        " its room (0: forever); the next run starts it again."
    ).tag(config=True)
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

    grants_file = Unicode(
        help="JSON file of per-notebook grants (docs/jupyterhub.md), kept outside the served"
        " folder's visible files; default $XDG_STATE_HOME/marimo-collab/grants.json"
        " (~/.local/state/...), grants-<name>.json for a named server. The join log sits beside.",
    ).tag(config=True)

    @default("grants_file")
    def _grants_file_default(self) -> str:
        return default_grants_file(os.environ.get("JUPYTERHUB_SERVER_NAME", ""))

    grants_audit_size = Int(
        1000, help="Joins kept in the owner's audit log (GET api/marimo-collab/grants/audit)."
    ).tag(config=True)

    grants_hub_shares = Bool(
        True, help="Under JupyterHub, share this server on the hub with each grantee (and unshare"
        " after their last grant), using the server's API token: it needs shares!server,"
        " read:users:name and read:groups:name (c.Spawner.server_token_scopes).",
    ).tag(config=True)

    def initialize_settings(self) -> None:
        self.room_manager = RoomManager(
            config=self, contents_manager=self.serverapp.contents_manager,
            root_dir=self.serverapp.root_dir, log=self.log)
        self.grant_store = GrantStore(self.grants_file, audit_size=self.grants_audit_size,
                                      served_root=self.serverapp.root_dir)
        self.hub_shares = HubShares.from_environment() if self.grants_hub_shares else None
        self.settings["marimo_collab"] = self
        try:  # said at start, not only to the first person who opens a notebook
            Journal.prepare_directory(Path(self.journal_dir))
        except OSError as exc:
            self.log.error("marimo-collab: %s; every notebook will refuse to open until then",
                           journal_dir_problem(Path(self.journal_dir), exc))
        self.flow = Flow(per_connection=self.max_queued_bytes,
                         per_user=self.max_queued_bytes_per_user,
                         total=self.max_queued_bytes_total,
                         connections_per_user=self.max_connections_per_user,
                         user_rate=self.user_rate_limit, user_burst=self.user_rate_burst)
        # After every extension has registered its handlers (jupyterlab may load after us).
        self.serverapp.io_loop.add_callback(self._guard_lab_handlers)

    def _guard_lab_handlers(self) -> None:
        # Only under our Authorizer, which knows the `settings` and `workspaces` resources; other
        # Authorizers may refuse names they never heard of, and the owner's layout with them.
        if isinstance(self.serverapp.authorizer, HubScopeAuthorizer):
            guard_lab_handlers(self.serverapp.web_app)

    def initialize_handlers(self) -> None:
        self.handlers.append((r"/api/marimo-collab/ws", CollabSocketHandler))
        self.handlers.append((r"/api/marimo-collab/grants", GrantsHandler))
        self.handlers.append((r"/api/marimo-collab/grants/audit", AuditHandler))
        self.handlers.append((r"/api/marimo-collab/grants/links", LinksHandler))
        self.handlers.append((r"/marimo-collab/claim/([A-Za-z0-9_-]+)", ClaimHandler))
        # The notebook's output frame: marimo's compiled frontend (docs/widgets.md).
        self.handlers.append((r"/marimo-collab/frontend/", OutputFramePageHandler))
        self.handlers.append((r"/marimo-collab/frontend/(.+)", OutputFrameAssetHandler,
                              {"path": "."}))

    async def stop_extension(self) -> None:
        await self.room_manager.shutdown()
