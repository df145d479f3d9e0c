"""`python -m codegen sync [--version X]`: bring the upstream specs in from the npm package.

The package is fetched with the machine's own npm client (its configured registry), its
tarball checked against the integrity hash the registry publishes for that version, and the
three spec files copied into specs/ with their sha256 recorded in the lock file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

from codegen.config import LOCK_FILE, NPM_PACKAGE, NPM_SPEC_DIR, SPECS, SPECS_DIR

NPM_TIMEOUT_S = 300


class SyncError(Exception):
    pass


def _npm_json(*args: str, cwd: Path | None = None) -> Any:
    completed = subprocess.run(
        ["npm", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise SyncError(f"npm {' '.join(args)} failed: {completed.stderr.strip()[-2000:]}")
    return json.loads(completed.stdout)


def sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_package(version: str, workdir: Path) -> tuple[bytes, str]:
    """The package tarball and the registry's integrity hash, after checking they agree."""
    published = _npm_json("view", f"{NPM_PACKAGE}@{version}", "dist")
    integrity = published["integrity"] if isinstance(published, dict) else None
    if not integrity or not integrity.startswith("sha512-"):
        raise SyncError(f"the registry publishes no sha512 integrity for {version}: {published}")
    packed = _npm_json("pack", f"{NPM_PACKAGE}@{version}", "--pack-destination", str(workdir))
    tarball = (workdir / packed[0]["filename"]).read_bytes()
    if sri_sha512(tarball) != integrity:
        raise SyncError(f"tarball of {NPM_PACKAGE}@{version} does not match its integrity hash")
    return tarball, integrity


def extract_specs(tarball_path: Path) -> dict[str, bytes]:
    wanted = {f"{NPM_SPEC_DIR}/{spec.name}.yaml": spec.name for spec in SPECS if spec.upstream}
    found: dict[str, bytes] = {}
    with tarfile.open(tarball_path, "r:gz") as archive:
        for member in archive.getmembers():
            if member.name in wanted and member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                found[wanted[member.name]] = handle.read()
    missing = set(wanted.values()) - set(found)
    if missing:
        raise SyncError(f"package has no spec for {sorted(missing)}")
    return found


def sync(version: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tarball, integrity = fetch_package(version, workdir)
        tarball_path = workdir / "package.tgz"
        tarball_path.write_bytes(tarball)
        specs = extract_specs(tarball_path)
    spec_versions = {yaml.safe_load(body)["info"]["version"] for body in specs.values()}
    lock: dict[str, Any] = {
        "package": NPM_PACKAGE,
        "version": version,
        "integrity": integrity,
        "specVersion": ", ".join(sorted(spec_versions)),
        "files": {},
    }
    for name, body in sorted(specs.items()):
        (SPECS_DIR / f"{name}.yaml").write_bytes(body)
        lock["files"][f"{name}.yaml"] = {"sha256": sha256_hex(body)}
    LOCK_FILE.write_text(json.dumps(lock, indent=2) + "\n")
    return lock


def verify_lock() -> dict[str, Any]:
    """The lock, after checking every upstream spec file still matches it."""
    if not LOCK_FILE.exists():
        raise SyncError("specs/upstream.lock.json is missing: run `python -m codegen sync`")
    lock: dict[str, Any] = json.loads(LOCK_FILE.read_text())
    for spec in SPECS:
        if not spec.upstream:
            continue
        recorded = lock["files"].get(f"{spec.name}.yaml", {}).get("sha256")
        actual = sha256_hex(spec.path.read_bytes())
        if recorded != actual:
            raise SyncError(
                f"specs/{spec.name}.yaml differs from the npm package (sha256 {actual} != "
                f"{recorded}): upstream files are never edited; put fixes in "
                "specs/upstream-patches.yaml"
            )
    return lock
