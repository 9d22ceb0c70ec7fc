"""Per-notebook grants: store, REST handlers, and the JupyterLab settings guard."""
