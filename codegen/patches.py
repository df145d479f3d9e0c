"""Reviewed corrections to the upstream specs, applied by codegen, never by hand.

`specs/upstream-patches.yaml` lists JSON Patch (RFC 6902) operations per spec, each with
the reason it exists. Every patch opens with a `test` of the upstream text it corrects, so
an upstream release that fixes (or moves) the quirk makes generation fail loudly instead of
patching the wrong place.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from codegen.config import PATCH_FILE


class PatchError(Exception):
    pass


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parent(document: Any, pointer: str) -> tuple[Any, str]:
    if not pointer.startswith("/"):
        raise PatchError(f"JSON pointer {pointer!r} must start with '/'")
    tokens = [_unescape(t) for t in pointer[1:].split("/")]
    node = document
    for token in tokens[:-1]:
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError) as exc:
            raise PatchError(f"{pointer}: no {token!r}") from exc
    return node, tokens[-1]


def apply_operation(document: Any, operation: dict[str, Any]) -> None:
    op, pointer = operation["op"], operation["path"]
    parent, key = _parent(document, pointer)
    present = key in parent if isinstance(parent, dict) else False
    if op == "test":
        if not present or parent[key] != operation["value"]:
            found = parent.get(key, "<absent>") if isinstance(parent, dict) else "<not an object>"
            raise PatchError(f"test failed at {pointer}: found {found!r}")
    elif op == "remove":
        if not present:
            raise PatchError(f"remove: nothing at {pointer}")
        del parent[key]
    elif op == "replace":
        if not present:
            raise PatchError(f"replace: nothing at {pointer}")
        parent[key] = copy.deepcopy(operation["value"])
    elif op == "add":
        parent[key] = copy.deepcopy(operation["value"])
    else:
        raise PatchError(f"unsupported patch op {op!r}")


def load_patches() -> dict[str, list[dict[str, Any]]]:
    if not PATCH_FILE.exists():
        return {}
    entries = yaml.safe_load(PATCH_FILE.read_text()) or []
    by_spec: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if not entry.get("why"):
            raise PatchError(f"patch for {entry.get('spec')} has no 'why'")
        by_spec.setdefault(entry["spec"], []).extend(entry["operations"])
    return by_spec


def apply_patches(spec_name: str, document: dict[str, Any]) -> dict[str, Any]:
    patched = copy.deepcopy(document)
    for operation in load_patches().get(spec_name, []):
        apply_operation(patched, operation)
    return patched
