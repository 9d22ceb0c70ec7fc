"""marimo's own compiled frontend, served as the notebook's sandboxed output renderer."""
