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
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

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


class OfficialClient:
    """`@interledger/open-payments` createAuthenticatedClient (validateResponses on) in a
    node process: `call("grant.request", {"url": ...}, body)` runs the client's method and
    returns what it resolved to, or raises `ClientCallFailed` with what it threw."""

    def __init__(self, wallet_address_url: str, private_key: Ed25519PrivateKey, key_id: str):
        config = {
            "walletAddressUrl": wallet_address_url,
            "privateKeyPem": private_key_pem(private_key),
            "keyId": key_id,
        }
        self._process = subprocess.Popen(
            [_node(), str(NODE_DIR / "client.mjs"), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=NODE_DIR,
        )  # fmt: skip
        self._next_id = 0
        ready = self._read_line()
        if ready != {"ready": True}:
            raise RuntimeError(f"client.mjs did not start: {ready}")

    def _read_line(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=NODE_TIMEOUT_S)
            assert self._process.stderr is not None
            raise RuntimeError(f"client.mjs exited: {self._process.stderr.read()}")
        return json.loads(line)

    def call(self, method: str, *args: Any) -> Any:
        assert self._process.stdin is not None
        self._next_id += 1
        self._process.stdin.write(json.dumps({"id": self._next_id, "call": method, "args": args}))
        self._process.stdin.write("\n")
        self._process.stdin.flush()
        answer = self._read_line()
        assert answer["id"] == self._next_id
        if not answer["ok"]:
            raise ClientCallFailed(method, answer["error"])
        return answer["value"]

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=NODE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> OfficialClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def official_client(ase: dict[str, Any]) -> OfficialClient:
    """The official client as the sandbox ASE `ase` (its manifest entry) registered it."""
    [client] = ase["clients"]
    key = load_pem_private_key(client["privateKey"].encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return OfficialClient(client["walletAddress"], key, client["keyId"])


class ClientCallFailed(Exception):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error
        self.status: int | None = error.get("status")
        self.code: str | None = error.get("code")
