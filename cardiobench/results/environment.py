"""What a run ran on: versions, plugins, device, git revision. Never fails: unknown parts are ``None``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from cardiobench import __version__


def git_revision(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: cardiobench's
    source), or ``None`` when it isn't one, git is missing, or anything else goes wrong."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        if not commit:
            return None
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def device_info(device: Any = None) -> dict[str, Any]:
    """``{"type", "name", ...}`` for a torch device (``"cuda:0"``, ``torch.device``, ``None`` = CPU)."""
    text = str(device) if device is not None else "cpu"
    kind = text.split(":", 1)[0]
    info: dict[str, Any] = {"type": kind, "name": None}
    if kind == "cuda":
        try:
            import torch

            index = torch.device(text).index
            index = torch.cuda.current_device() if index is None else index
            props = torch.cuda.get_device_properties(index)
            info.update(
                name=torch.cuda.get_device_name(index),
                index=index,
                memory_gb=round(props.total_memory / 2**30, 1),
                capability=f"{props.major}.{props.minor}",
                cuda=torch.version.cuda,
            )
        except Exception:  # no CUDA build, no driver...
            pass
    elif kind == "cpu":
        info.update(name=_cpu_name(), cores=os.cpu_count())
    else:
        info["name"] = text
    return info


def plugin_versions(plugin_manager: Any = None) -> dict[str, str]:
    """Distribution name -> version of every distribution with a plugin registered (built-ins included)."""
    try:
        if plugin_manager is None:
            from cardiobench.plugins import get_plugin_manager

            plugin_manager = get_plugin_manager()
        out: dict[str, str] = {}
        for name, _plugin in plugin_manager.list_name_plugin():
            dist, version = plugin_manager.origin(name)
            out[dist] = version
        return dict(sorted(out.items()))
    except Exception:
        return {}


def collect_environment(device: Any = None, plugin_manager: Any = None, **extra: Any) -> dict[str, Any]:
    """Everything a results row records about where it ran. ``extra`` keys are added as given."""
    env: dict[str, Any] = {
        "cardiobench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": None,
        "numpy": None,
        "plugins": plugin_versions(plugin_manager),
        "device": device_info(device),
        "git": git_revision(),
    }
    for module in ("torch", "numpy"):
        mod = sys.modules.get(module)
        if mod is None:
            try:
                mod = __import__(module)
            except Exception:
                mod = None
        env[module] = getattr(mod, "__version__", None) if mod is not None else None
    env.update(extra)
    return env
