"""The official Open Payments JavaScript libraries, pinned in tests/node/package-lock.json,
run with node from the tests: what they produce is what deployed clients send.

`nox -s tests` installs them (`npm ci`); a test that needs them fails, not skips, without.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_TIMEOUT_S = 60.0


class NodeOracleUnavailable(RuntimeError):
    pass


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise NodeOracleUnavailable("node is not on PATH (Node 20 is required by the tests)")
    if not (NODE_DIR / "node_modules" / "@interledger" / "open-payments").is_dir():
        raise NodeOracleUnavailable(
            "the official libraries are not installed: npm ci --prefix tests/node"
        )
    return node


def run_script(script: str, payload: dict[str, Any]) -> Any:
    """Run `tests/node/<script>` with `payload` as JSON on stdin; its JSON stdout."""
    completed = subprocess.run(
        [_node(), str(NODE_DIR / script)],
        input=json.dumps(payload), capture_output=True, text=True,
        timeout=NODE_TIMEOUT_S, cwd=NODE_DIR, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"{script} failed ({completed.returncode}): {completed.stderr}")
    return json.loads(completed.stdout)


def private_key_pem(private_key: Ed25519PrivateKey) -> str:
    return private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def sign_with_official_library(
    private_key: Ed25519PrivateKey, key_id: str, requests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each request `{method, url, headers?, body?}` signed by
    `@interledger/http-signature-utils` createHeaders: `[{headers, body}]`, where `body` is
    the exact string to send (or None)."""
    result: list[dict[str, Any]] = run_script(
        "sign.mjs",
        {"privateKeyPem": private_key_pem(private_key), "keyId": key_id, "requests": requests},
    )
    return result
