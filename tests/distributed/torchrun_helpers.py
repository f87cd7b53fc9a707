"""Launching ``torchrun`` (``python -m torch.distributed.run``) from tests: 2 CPU processes, gloo, one thread each."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
WORKER = HERE / "ddp_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", TORCHELASTIC_ERROR_FILE="")
    env.pop("WORLD_SIZE", None)
    return env


def torchrun(args: list[str], *, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``torchrun --nproc_per_node nproc --master_port <free> args...``; its completed process (text output)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), *args]
    return subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=timeout)
