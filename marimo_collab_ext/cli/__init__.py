"""The `marimo-collab` command: watch, run, save and mirror a live marimo session from a terminal,
or serve it to an AI agent (`mcp`).

Usage and token handling: docs/clients.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

from ..client import CollabClient, CollabError
from .connection import ConnectError, KeepAlive, open_client
from .report import Reporter, stamp
from .run import CellChoiceError, choose_cells, run_cells
from .token import TokenError, resolve_token

__all__ = ["build_parser", "main"]

DEFAULT_SERVER = "http://127.0.0.1:8888/"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so tests and docs can inspect it)."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--server",
                            default=os.environ.get("MARIMO_COLLAB_SERVER", DEFAULT_SERVER),
                            help="server base URL, with JupyterHub's /user/<name>/ prefix if"
                                 " any (default: $MARIMO_COLLAB_SERVER or %(default)s)")
    connection.add_argument("--token-file", metavar="PATH",
                            help="read the token from this file (default: $MARIMO_COLLAB_TOKEN,"
                                 " $JUPYTERHUB_API_TOKEN or $JUPYTER_TOKEN)")
    connection.add_argument("--token", help=argparse.SUPPRESS)  # visible in `ps`: warned about
    common = argparse.ArgumentParser(add_help=False, parents=[connection])
    common.add_argument("notebook", help="notebook path on the server, relative to its root")

    parser = argparse.ArgumentParser(
        prog="marimo-collab",
        description="Take part in a live marimo-collab session from a terminal or any editor.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("watch", parents=[common], help="print who joins, edits, runs and saves",
                   description="Print presence, edits, kernel status and saves until Ctrl-C.")
    run = sub.add_parser("run", parents=[common], help="run cells and print their outputs",
                         description="Run cells in the shared kernel; print outputs as text"
                                     " until the run completes. Exit 1 when a cell fails.")
    run.add_argument("cells", nargs="*",
                     help="cell ids, or 1-based positions (-1 is the last cell)")
    run.add_argument("--all", action="store_true", help="run every cell")
    run.add_argument("--timeout", type=float, default=600,
                     help="give up after this many seconds (default %(default)s)")
    sub.add_parser("save", parents=[common], help="save the session to the notebook file",
                   description="Ask the server to write the session to its notebook file.")
    mirror = sub.add_parser(
        "mirror", parents=[common], help="keep a local .py file in sync, both ways",
        description="Keep LOCAL_FILE and the live session in sync both ways until Ctrl-C:"
                    " saving the file sends your changes; peers' changes rewrite it (3-way"
                    " merged with what you saved but was not sent yet).")
    mirror.add_argument("local_file", help="the local file to keep in sync (created if missing);"
                                           " not the server's own copy of the notebook")
    mirror.add_argument("--initial", choices=("session", "local"), default="session",
                        help="when LOCAL_FILE already exists and differs at start: 'session'"
                             " overwrites it (keeping LOCAL_FILE.orig), 'local' sends it into"
                             " the session (default %(default)s)")
    mirror.add_argument("--poll", type=float, default=0.2, help="seconds between file checks")
    mirror.add_argument("--debounce", type=float, default=0.25,
                        help="seconds to gather peers' typing before rewriting the file")
    mcp = sub.add_parser(
        "mcp", parents=[connection], help="an MCP server: an AI agent joins notebooks as a peer",
        description="Serve the Model Context Protocol on stdin/stdout: an AI agent's tools"
                    " read, edit and run live notebooks as a visible peer (\"<you>'s agent\")"
                    " with the token's role, narrowed by --role.")
    mcp.add_argument("notebook", nargs="?",
                     help="the notebook tools act on when they name none (default: none)")
    mcp.add_argument("--role", choices=("viewer", "editor", "runner"), default="runner",
                     help="the most the agent may do; the token's role still caps it"
                          " (default %(default)s)")
    mcp.add_argument("--suggest", action="store_true",
                     help="edits and new cells become suggestions that change nothing until"
                          " an editor accepts them (needs the editor role)")
    mcp.add_argument("--type-delay", type=float, default=15, metavar="MS",
                     help="milliseconds between typed words, so people can follow"
                          " (0: each edit at once; default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = _printer()
    try:
        token, _source = resolve_token(args.token, args.token_file)
    except TokenError as exc:
        print(f"marimo-collab: {exc}", file=sys.stderr)
        return 2
    if args.command == "mcp":
        return _mcp(args, token)
    try:
        return asyncio.run(_until_stopped(_command(args, token, out)))
    except KeyboardInterrupt:
        return 130
    except (ConnectError, CellChoiceError) as exc:
        print(f"marimo-collab: {exc}", file=sys.stderr)
        return 2
    except CollabError as exc:
        print(f"marimo-collab: the server answered {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the local file's directory is not writable
        print(f"marimo-collab: {exc}", file=sys.stderr)
        return 1


async def _until_stopped(command) -> int:
    # Ctrl-C, SIGTERM and SIGHUP (an editor stopping its task or closing its terminal)
    # cancel the command, so it closes its socket and the mirror sends a last save first.
    task = asyncio.ensure_future(command)
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            loop.add_signal_handler(signum, task.cancel)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # Windows: KeyboardInterrupt still ends the command
    try:
        return await task
    except asyncio.CancelledError:
        return 130


async def _command(args: argparse.Namespace, token: str | None,
                   out: Callable[[str], None]) -> int:
    client = await open_client(args.server, args.notebook, token)
    try:
        if args.command == "save":
            response = await client.save()
            out(f"saved {args.notebook} (hash {response.get('hash', '')[:12]})")
            return 0
        if args.command == "run":
            if not args.cells and not args.all:
                raise CellChoiceError("name cells to run (ids or positions) or pass --all")
            return await run_cells(client, choose_cells(client, args.cells, args.all), out,
                                   args.timeout)
        if args.command == "watch":
            return await _watch(client, args, out)
        return await _mirror(client, args, out)
    finally:
        await client.close()


async def _watch(client: CollabClient, args, out) -> int:
    reporter = Reporter(client, out)
    out(stamp(reporter.greeting(args.notebook)))
    keep = KeepAlive(client, lambda text: out(stamp(text)),
                     on_rejoined=lambda resumed: reporter.learn_peers())
    tasks = [keep.start(), asyncio.ensure_future(reporter.pump())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # ConnectError: access gone for good
        return 0
    finally:
        tasks[1].cancel()
        await keep.stop()


async def _mirror(client: CollabClient, args, out) -> int:
    from ..client.mirror import FileMirror, MirrorError

    log = lambda text: out(stamp(text))  # noqa: E731
    reporter = Reporter(client, out, edits=False)
    log(reporter.greeting(args.notebook))
    mirror = FileMirror(client, args.local_file, poll_interval=args.poll,
                        debounce=args.debounce, initial=args.initial, log=log)

    def lost() -> None:
        mirror.connected = False
        log(f"offline: saves of {args.local_file} are sent when the connection is back")

    def rejoined(resumed: bool) -> None:
        reporter.learn_peers()
        mirror.rejoined(resumed)

    keep = KeepAlive(client, log, on_lost=lost, on_rejoined=rejoined)
    tasks = []
    try:
        await mirror.start()
        log(f"mirroring {args.notebook} <-> {args.local_file} (Ctrl-C to stop)")
        tasks = [keep.start(), asyncio.ensure_future(reporter.pump()),
                 asyncio.ensure_future(mirror.run())]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        return 0
    except MirrorError as exc:
        log(f"mirror stopped: {exc}")
        return 1
    finally:
        for task in tasks:
            task.cancel()
        await keep.stop()
        await _last_sync(client, mirror, log)


async def _last_sync(client: CollabClient, mirror, log) -> None:
    # Ctrl-C right after a save: send that save, and wait for what is in flight.
    from ..client.mirror import DISCONNECTED, MirrorError

    try:
        if mirror.connected and client.ws is not None:
            await asyncio.wait_for(mirror.sync(), 5)
            await client.flush(timeout=5)
    except (*DISCONNECTED, MirrorError, CollabError):
        log("stopped with changes not confirmed by the server; they are in the local file")


def _mcp(args: argparse.Namespace, token: str | None) -> int:
    try:
        from ..agent.server import Agent, serve
    except ImportError as exc:
        print(f"marimo-collab: {exc}", file=sys.stderr)
        return 2
    from ..auth.roles import Role

    agent = Agent(args.server, token, Role.parse(args.role), max(args.type_delay, 0) / 1000,
                  args.notebook, suggest=args.suggest)
    try:
        asyncio.run(serve(agent))
    except KeyboardInterrupt:
        return 130
    return 0


def _printer() -> Callable[[str], None]:
    def out(text: str) -> None:
        try:
            print(text, flush=True)
        except OSError:
            pass  # the terminal went away (SIGHUP): keep shutting down cleanly
    return out
