# JupyterHub configuration of the test harness (tests/hub/harness.py), documented in
# docs/jupyterhub.md. Everything on 127.0.0.1; ports, paths and the admin token come from the
# harness through MC_HUB_* environment variables.
import os
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ["MC_HUB_DIR"])
here = Path(__file__).resolve().parent

# --- network: loopback only, ports chosen by the harness ---------------------------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["MC_HUB_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["MC_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['MC_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["MC_CHP"]]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# --- people: anyone may log in with the shared test password -----------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["MC_HUB_PASSWORD"]
c.Authenticator.allow_all = True

# --- permissions -------------------------------------------------------------------------------
# Custom scopes, each implying the one below; the names follow JupyterHub's custom:<project>:<x>.
c.JupyterHub.custom_scopes = {
    "custom:marimo-collab:read": {
        "description": "Open marimo notebooks and see code, outputs and other people (viewer).",
    },
    "custom:marimo-collab:write": {
        "description": "Edit, add, move and save cells of marimo notebooks (editor).",
        "subscopes": ["custom:marimo-collab:read"],
    },
    "custom:marimo-collab:execute": {
        "description": "Run cells, set UI values and control the kernel (runner).",
        "subscopes": ["custom:marimo-collab:write"],
    },
}
c.JupyterHub.load_roles = [
    # Every user may share their own server (sharing by name needs the names), with our custom
    # scopes: a sharer must hold the scopes it shares, and everyone holds them on their own server.
    {
        "name": "user",
        "scopes": [
            "self",
            "shares!user",
            "read:users:name",
            "read:groups:name",
            "custom:marimo-collab:execute!user",
        ],
    },
    # carol may open alice's server read-only. Role scopes reach browsers (through the
    # server's OAuth client, below) and API tokens alike.
    {
        "name": "alice-notebook-viewers",
        "users": ["carol"],
        "scopes": ["access:servers!server=alice/", "custom:marimo-collab:read!server=alice/"],
    },
    # Members of the hub group "crew" may reach alice's server; their level comes from the
    # single-user server's HubScopeAuthorizer.group_levels (crew -> write).
    {
        "name": "crew-on-alice",
        "groups": ["crew"],
        "scopes": ["access:servers!server=alice/"],
    },
    # Members of "lab" may reach alice's server and nothing more: what they may open there comes
    # from alice's per-notebook grants (tests/test_hub_grants.py). A role, because JupyterHub 6.1
    # ignores group shares for tokens.
    {
        "name": "lab-on-alice",
        "groups": ["lab"],
        "scopes": ["access:servers!server=alice/"],
    },
    # The harness itself: creates users, starts servers, issues tokens.
    {
        "name": "harness",
        "services": ["harness"],
        "scopes": [
            "admin:users",
            "admin:servers",
            "admin:groups",
            "tokens",
            "list:users",
            "read:users",
            "read:shares",
        ],
    },
]
c.JupyterHub.load_groups = {"crew": {"users": ["hank"]}, "lab": {"users": ["lena"]}}
c.JupyterHub.services = [{"name": "harness", "api_token": os.environ["MC_HUB_ADMIN_TOKEN"]}]

# The single-user server's own token ($JUPYTERHUB_API_TOKEN) may share that one server with the
# people its owner grants notebooks to (marimo_collab_ext.grants.hub_shares). The token gets the
# subset of these its user holds: the "user" role above has shares!user and the name scopes.
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    "shares!server",
    "read:users:name",
    "read:groups:name",
]

# Without this, browsers' OAuth tokens for a server carry only access:servers, whatever roles say.
c.Spawner.oauth_client_allowed_scopes = [
    "custom:marimo-collab:read!server",
    "custom:marimo-collab:write!server",
    "custom:marimo-collab:execute!server",
]


# --- single-user servers: local processes with our extension ----------------------------------
class RecordingSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner that leaves a pid file, so the harness can kill by PID."""

    async def start(self):
        url = await super().start()
        (state / "pids").mkdir(exist_ok=True)
        (state / "pids" / f"{self.user.name}-{self.name or 'default'}.pid").write_text(
            str(self.pid)
        )
        return url


c.JupyterHub.spawner_class = RecordingSpawner
c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {
    # The extension from this checkout, and the single-user settings in singleuser/.
    "PYTHONPATH": os.environ["MC_REPO"],
    "JUPYTER_CONFIG_DIR": str(here / "singleuser"),
    "MC_HUB_DIR": str(state),
    "MC_RECHECK_INTERVAL": os.environ.get("MC_RECHECK_INTERVAL", "1"),
}
