"""Real-time multiplayer for marimo notebooks inside Jupyter and JupyterHub."""

from ._version import __version__


def _jupyter_server_extension_points():
    from .app import MarimoCollab

    return [{"module": "marimo_collab_ext.app", "app": MarimoCollab}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "marimo-collab"}]


__all__ = ["__version__"]
