"""`pip install .` ships the labextension and enables the server extension."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_installs_an_enabled_server_and_lab_extension(tmp_path: Path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("marimo_collab_ext-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    data = "marimo_collab_ext-0.1.0.data/data/"
    assert f"{data}share/jupyter/labextensions/marimo-collab/package.json" in names
    assert any(
        n.startswith(f"{data}share/jupyter/labextensions/marimo-collab/static/remoteEntry")
        for n in names
    )
    assert f"{data}etc/jupyter/jupyter_server_config.d/marimo_collab_ext.json" in names

    # A fresh environment: the wheel installed into it, its dependencies seen through a .pth
    # (no editable checkout on its path), so the listing shows what `pip install .` gives.
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run(
        [str(python), "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    deps = sysconfig.get_path("purelib")
    Path(site, "_test_dependencies.pth").write_text(deps + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--prefix",
            str(env_dir),
            str(wheel),
        ],
        check=True,
    )
    # nothing of the test environment leaks in: no VIRTUAL_ENV, no JUPYTER_* paths
    env = {
        "PATH": f"{env_dir}/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "user-data"),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(python), *args], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
        )
        return done.stdout + done.stderr

    server_out = run("-m", "jupyter_server", "extension", "list")
    section = server_out.split(f"Config dir: {env_dir}/etc/jupyter")[1].split("Config dir:")[0]
    assert "marimo_collab_ext" in section and "enabled" in section and "OK" in section
    lab_out = run("-m", "jupyterlab.labextensions", "list")
    assert f"{env_dir}/share/jupyter/labextensions" in lab_out
    assert "marimo-collab v0.1.0" in lab_out and "enabled" in lab_out
    imported = run("-c", "import marimo_collab_ext; print(marimo_collab_ext.__file__)")
    assert imported.startswith(site)
