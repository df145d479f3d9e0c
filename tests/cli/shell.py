"""The `opase` command as a shell runs it: a subprocess whose environment holds no OPASE_
setting but those a test passes."""

from __future__ import annotations

import os
import subprocess
import sys


def opase(
    *args: str, env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opase", *args],
        capture_output=True, text=True, env=env, timeout=timeout_s, check=False,
    )  # fmt: skip


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without its OPASE_ settings, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPASE_")}
    return env | overrides
