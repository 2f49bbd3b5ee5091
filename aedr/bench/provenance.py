"""What a result file needs to be reproduced: package versions, git revision, machine, load."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from ..card import package_versions

PACKAGES = (
    "aedr", "torch", "diffusers", "numpy", "scipy", "scikit-image", "scikit-learn",
    "pandas", "pyarrow", "pillow", "matplotlib", "rich", "typer", "pluggy",
)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_revision(path: Path | None = None) -> dict[str, Any]:
    """The commit of the checkout the ``aedr`` package runs from (and whether it has local changes)."""
    where = path or Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    rev = git("rev-parse", "HEAD")
    if rev is None:
        return {"revision": None, "dirty": None, "note": "not a git checkout (installed package)"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": rev, "dirty": bool(status), "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine(device: str = "cpu") -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "load_average": load_average(),
    }
    if torch.cuda.is_available():
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def plugin_versions(plugins) -> dict[str, dict[str, Any]]:
    return {
        name: {"module": p.module, "version": p.version, "builtin": p.builtin, "errors": p.errors}
        for name, p in plugins.info.items()
    }


def provenance(device: str, plugins=None) -> dict[str, Any]:
    data: dict[str, Any] = {"versions": package_versions(PACKAGES), "git": git_revision(), "machine": machine(device)}
    if plugins is not None:
        data["plugins"] = plugin_versions(plugins)
    return data
