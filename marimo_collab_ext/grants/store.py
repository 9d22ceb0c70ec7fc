"""Per-notebook grants: one notebook or folder, to one hub user or group, at a role.

Kept in a JSON file outside the served folder (`c.MarimoCollab.grants_file`), written atomically
with mode 0600; the join log (audit) lives beside it. docs/jupyterhub.md "Per-notebook sharing".
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..auth.roles import Role

KINDS = ("user", "group")


class GrantError(ValueError):
    """A grant request that names no valid path, grantee or role (HTTP 400)."""


def normalize_grant_path(path: object) -> str:
    """A grant's path: relative to the server root, '/'-separated, never the root itself."""
    if not isinstance(path, str) or not path.strip("/"):
        raise GrantError("`path` must name a notebook or a folder (not the server's root)")
    normalized = posixpath.normpath(path.strip("/"))
    if normalized in (".", "") or normalized.startswith("..") or "\x00" in normalized:
        raise GrantError("`path` must stay inside the server's root")
    return normalized


def covers(grant_path: str, path: str) -> bool:
    """Whether a grant on `grant_path` reaches `path`: that file, or anything in that folder."""
    return path == grant_path or path.startswith(grant_path + "/")


@dataclass(frozen=True)
class Grant:
    """`kind` ("user" or "group") `name` may use `path` (a file, or a folder and all in it)."""

    path: str
    kind: str
    name: str
    role: Role

    def to_json(self) -> dict:
        return {"path": self.path, self.kind: self.name, "role": self.role.wire_name}

    @classmethod
    def from_json(cls, data: object, *, need_role: bool = True) -> Grant:
        """A grant from `{"path", "user" | "group", "role"}`; GrantError when malformed."""
        if not isinstance(data, dict):
            raise GrantError("a grant is a JSON object")
        path = normalize_grant_path(data.get("path"))
        named = [k for k in KINDS if data.get(k) is not None]
        if len(named) != 1:
            raise GrantError("a grant names exactly one of `user` or `group`")
        kind = named[0]
        name = data[kind]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise GrantError(f"`{kind}` must be a non-empty name")
        role = data.get("role")
        if role is None and not need_role:
            return cls(path, kind, name.strip(), Role.VIEWER)
        try:
            parsed = Role.parse(role) if isinstance(role, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise GrantError("`role` must be viewer, editor or runner")
        return cls(path, kind, name.strip(), parsed)


@dataclass(frozen=True)
class Join:
    """One successful join, for the owner's audit log."""

    path: str
    username: str
    role: str
    at: float

    def to_json(self) -> dict:
        out = asdict(self)
        out["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        return out


@dataclass(frozen=True)
class ShareLink:
    """A link that gives whoever opens it `path` at `role` (a grant in their name), until
    `expires_at`; `hub_code_id` is the JupyterHub share code that lets them reach the server."""

    id: str
    path: str
    role: Role
    expires_at: float
    hub_code_id: str

    def to_json(self) -> dict:
        return {"id": self.id, "path": self.path, "role": self.role.wire_name,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at)),
                "hub_code_id": self.hub_code_id}

    def to_file(self) -> dict:
        return {**self.to_json(), "expires_at": self.expires_at}


class GrantStore:
    """The grants of one server, read from and written to `path` (created on the first grant).

    Another writer (a second process, the owner by hand) is picked up by the file's mtime.
    """

    def __init__(self, path: str | os.PathLike, *, audit_size: int = 1000,
                 served_root: str | None = None) -> None:
        self.path = Path(path)
        # The state folder as a path of the served folder, when it lies inside it (~/.local/...).
        self._state_in_root: str | None = None
        if served_root:
            rel = os.path.relpath(os.path.realpath(self.path.parent),
                                  os.path.realpath(served_root))
            if rel != ".." and not rel.startswith("../"):
                self._state_in_root = posixpath.normpath(rel.replace(os.sep, "/"))
        self.audit_path = self.path.with_name(self.path.stem + "-audit.jsonl")
        self.audit_size = audit_size
        self._grants: dict[tuple[str, str, str], Grant] = {}
        # Grantees whose hub share this server made (and so may remove): (kind, name).
        self._hub_shares: set[tuple[str, str]] = set()
        self._links: dict[str, ShareLink] = {}
        # (kind, name) -> that grantee's grants: each request looks up only its user and groups.
        self._by_grantee: dict[tuple[str, str], list[Grant]] = {}
        self._stamp: tuple[int, int] | None | bool = False  # False: not read yet
        self._joins: deque[Join] = deque(maxlen=max(1, audit_size))
        self._audit_lines = 0
        self._load_audit()  # the grants themselves load on first use (a bad file: see _load)

    # ---- grants ------------------------------------------------------------------------------

    def grants(self, path: str | None = None) -> list[Grant]:
        """Every grant, or those that reach `path` (a file) or lie in it (a folder)."""
        self._reload_if_changed()
        found = list(self._grants.values())
        if path is not None:
            path = normalize_grant_path(path)
            found = [g for g in found if covers(g.path, path) or covers(path, g.path)]
        return sorted(found, key=lambda g: (g.path, g.kind, g.name))

    def put(self, grant: Grant) -> Grant | None:
        """Create or change a grant; returns the one it replaced."""
        self._reload_if_changed()
        key = (grant.path, grant.kind, grant.name)
        previous = self._grants.get(key)
        self._grants[key] = grant
        self._index()
        self._save()
        return previous

    def delete(self, path: str, kind: str, name: str) -> Grant | None:
        """Remove one grant; returns it, or None when there was none."""
        self._reload_if_changed()
        removed = self._grants.pop((normalize_grant_path(path), kind, name), None)
        if removed is not None:
            self._index()
            self._save()
        return removed

    def role_for(self, username: str, groups: Iterable[str], path: str) -> Role | None:
        """The highest role any grant gives this user (or one of their groups) on `path`."""
        roles = [g.role for g in self._grants_of(username, groups) if covers(g.path, path)]
        return max(roles) if roles else None

    def has_grants(self, username: str, groups: Iterable[str]) -> bool:
        """Whether any grant names this user or one of their groups (they are then confined)."""
        return bool(self._grants_of(username, groups))

    def grantees_of(self, kind: str, name: str) -> list[Grant]:
        """The grants of one user or group."""
        self._reload_if_changed()
        return list(self._by_grantee.get((kind, name), ()))

    def _grants_of(self, username: str, groups: Iterable[str]) -> list[Grant]:
        self._reload_if_changed()
        found = list(self._by_grantee.get(("user", username), ())) if username else []
        for group in groups:
            found.extend(self._by_grantee.get(("group", group), ()))
        return found

    def _index(self) -> None:
        self._by_grantee = {}
        for grant in self._grants.values():
            self._by_grantee.setdefault((grant.kind, grant.name), []).append(grant)

    def mark_hub_share(self, kind: str, name: str, made: bool) -> None:
        """Remember (or forget) that this server shared itself with the grantee on the hub."""
        self._reload_if_changed()
        (self._hub_shares.add if made else self._hub_shares.discard)((kind, name))
        self._save()

    def made_hub_share(self, kind: str, name: str) -> bool:
        self._reload_if_changed()
        return (kind, name) in self._hub_shares

    def add_link(self, link: ShareLink) -> None:
        self._reload_if_changed()
        self._links[link.id] = link
        self._save()

    def links(self, path: str | None = None) -> list[ShareLink]:
        """Share links not yet expired (expired ones are dropped at the next write)."""
        self._reload_if_changed()
        now = time.time()
        return sorted((k for k in self._links.values() if k.expires_at > now
                       and (path is None or covers(normalize_grant_path(path), k.path))),
                      key=lambda k: (k.path, k.expires_at))

    def link(self, link_id: str) -> ShareLink | None:
        self._reload_if_changed()
        found = self._links.get(link_id)
        return found if found is not None and found.expires_at > time.time() else None

    def delete_link(self, link_id: str) -> ShareLink | None:
        self._reload_if_changed()
        removed = self._links.pop(link_id, None)
        if removed is not None:
            self._save()
        return removed

    def is_state_path(self, path: str) -> bool:
        """Whether a served path (relative to the root) is the grants folder or inside it."""
        state = self._state_in_root
        if state is None:
            return False
        if state == ".":  # the file sits in the root itself: protect just the two files
            return path in (self.path.name, self.audit_path.name)
        return covers(state, path)

    # ---- audit -------------------------------------------------------------------------------

    def record_join(self, path: str, username: str, role: str) -> None:
        """Log a successful join (in memory and appended to the audit file)."""
        join = Join(path, username, role, time.time())
        self._joins.append(join)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self._audit_lines >= 2 * self.audit_size:  # trim: rewrite the last audit_size
                _write_atomic(self.audit_path, "".join(
                    json.dumps(asdict(j)) + "\n" for j in self._joins))
                self._audit_lines = len(self._joins)
            else:
                fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(json.dumps(asdict(join)) + "\n")
                self._audit_lines += 1
        except OSError:
            pass  # the log is a convenience; a full disk must not refuse the join

    def joins(self, path: str | None = None) -> list[Join]:
        """Recorded joins, oldest first: all, or those of notebooks at or under `path`."""
        if path is None:
            return list(self._joins)
        path = normalize_grant_path(path)
        return [j for j in self._joins if covers(path, j.path)]

    # ---- file --------------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload_if_changed(self) -> None:
        if self._stat() != self._stamp:
            self._load()

    def _load(self) -> None:
        """Read the file. One that cannot be read raises on every use until it is fixed: the
        grantees' requests fail (500) rather than fall back to what a plain share gives."""
        stamp = self._stat()
        if stamp is None:
            self._grants, self._hub_shares, self._stamp = {}, set(), None
            self._links, self._by_grantee = {}, {}
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            grants = [Grant.from_json(item) for item in data.get("grants", [])]
            hub_shares = {(s["kind"], s["name"]) for s in data.get("hub_shares", [])
                          if s.get("kind") in KINDS}
            links = [ShareLink(str(k["id"]), normalize_grant_path(k["path"]),
                               Role.parse(k["role"]), float(k["expires_at"]),
                               str(k.get("hub_code_id", ""))) for k in data.get("links", [])]
        except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
            raise GrantError(f"{self.path} is not a readable grants file: {e}") from None
        self._grants = {(g.path, g.kind, g.name): g for g in grants}
        self._hub_shares = hub_shares
        self._links = {k.id: k for k in links}
        self._index()
        self._stamp = stamp

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = {"version": 1, "grants": [g.to_json() for g in self._sorted()],
                "hub_shares": [{"kind": k, "name": n} for k, n in sorted(self._hub_shares)],
                "links": [k.to_file() for k in self._links.values() if k.expires_at > time.time()]}
        _write_atomic(self.path, json.dumps(body, indent=1) + "\n")
        self._stamp = self._stat()

    def _sorted(self) -> list[Grant]:
        return sorted(self._grants.values(), key=lambda g: (g.path, g.kind, g.name))

    def _load_audit(self) -> None:
        try:
            lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        self._audit_lines = len(lines)
        for line in lines[-self.audit_size:]:
            try:
                self._joins.append(Join(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn last line after a crash


def _write_atomic(path: Path, text: str) -> None:
    """Write via a 0600 temporary file in the same folder, fsync, rename over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp creates it 0600
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def default_grants_file(server_name: str = "") -> str:
    """`$XDG_STATE_HOME/marimo-collab/grants.json` (or ~/.local/state/...), one per named server."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    name = f"grants-{server_name}.json" if server_name else "grants.json"
    return os.path.join(base, "marimo-collab", name)
