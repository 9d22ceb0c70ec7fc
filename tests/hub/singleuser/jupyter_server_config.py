# Single-user server settings of the hub harness (JUPYTER_CONFIG_DIR points here).
# The same settings a real deployment uses are in docs/jupyterhub.md.
import os

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.ServerApp.allow_root = True  # the harness runs as root
c.ServerApp.jpserver_extensions = {"marimo_collab_ext": True}
# Read-only and edit-only access: map the hub's custom scopes to read / write / execute.
c.ServerApp.authorizer_class = "marimo_collab_ext.auth.hub_authorizer.HubScopeAuthorizer"
# olga shares only through grants and links (tests/test_hub_grants.py): a plain share gives nothing.
c.HubScopeAuthorizer.access_level = "none" if os.environ["JUPYTERHUB_USER"] == "olga" else "read"
c.HubScopeAuthorizer.group_levels = {"crew": "write"}
# Re-check open connections every second so the revocation test stays short.
c.MarimoCollab.role_recheck_interval = float(os.environ.get("MC_RECHECK_INTERVAL", "1"))
c.MarimoCollab.journal_dir = os.path.join(
    os.environ["MC_HUB_DIR"], "journal", os.environ["JUPYTERHUB_USER"]
)
# JupyterLab's settings and workspaces (the grants tests write them) in the hub's temporary folder.
c.LabApp.user_settings_dir = os.path.join(
    os.environ["MC_HUB_DIR"], "lab", os.environ["JUPYTERHUB_USER"], "user-settings"
)
c.LabApp.workspaces_dir = os.path.join(
    os.environ["MC_HUB_DIR"], "lab", os.environ["JUPYTERHUB_USER"], "workspaces"
)
