"""Request validation compiled from the specs: body, path and query parameters.

codegen writes each operation's JSON Schema 2020-12 documents into
`generated/request_schemas.json`; they are compiled once, at start-up, with jsonschema-rs
(well under a microsecond for a typical body), which keeps the 3.1 semantics the generated
models lose (`unevaluatedProperties`, `oneOf`, `const`, formats). The body is then loaded
into the generated pydantic model, so handlers get typed input.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import jsonschema_rs
import orjson
from pydantic import BaseModel, ValidationError

from opase.amounts import AMOUNT_MINOR_MAX, UINT64_MAX
from opase.errors import InvalidRequest, UnsupportedMediaType
from opase_generated.routes import Operation

ERRORS_REPORTED_COUNT_MAX = 10
_DIGITS = re.compile(r"[0-9]{1,20}")
_INTEGER = re.compile(r"-?[0-9]{1,20}")


def _is_uint64(value: str) -> bool:
    # Amounts travel as strings of uint64: digits only, no sign, no exponent, no decimals.
    return bool(_DIGITS.fullmatch(value)) and int(value) <= UINT64_MAX


def _is_ledger_amount(value: str) -> bool:
    # A positive amount the ledger can hold (BIGINT): what the admin API moves.
    return bool(_DIGITS.fullmatch(value)) and 0 < int(value) <= AMOUNT_MINOR_MAX


FORMATS = {"uint64": _is_uint64, "ledger-amount": _is_ledger_amount}


def _compile(schema: dict[str, Any] | None) -> jsonschema_rs.Draft202012Validator | None:
    if schema is None:
        return None
    return jsonschema_rs.Draft202012Validator(
        schema, formats=FORMATS, validate_formats=True, ignore_unknown_formats=True
    )


def _import(dotted: str) -> Any:
    module_name, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _specific(error: Any) -> list[Any]:
    """The errors to report for one failure: for `oneOf`/`anyOf`, those of the branch that
    got furthest into the document, so a client reads `/debitAmount/value is not a uint64`
    rather than `not valid under any of the schemas`."""
    branches = [branch for branch in (getattr(error.kind, "context", None) or []) if branch]
    if not branches:
        return [error]
    best = max(branches, key=lambda b: (max(len(e.instance_path) for e in b), -len(b)))
    return [found for inner in best for found in _specific(inner)]


def _problems(validator: jsonschema_rs.Draft202012Validator, instance: Any) -> list[dict[str, str]]:
    problems = []
    for error in validator.iter_errors(instance):
        for specific in _specific(error):
            pointer = "".join(f"/{part}" for part in specific.instance_path)
            problems.append({"path": pointer or "/", "message": specific.message})
        if len(problems) >= ERRORS_REPORTED_COUNT_MAX:
            break
    return problems[:ERRORS_REPORTED_COUNT_MAX]


_INT64_MAX: Final = 2**63 - 1


def _integral_floats_to_int(value: Any) -> Any:
    # Only within 64 bits: 1e20 stays a float, which JSON (and orjson) can write back.
    if isinstance(value, float) and value.is_integer() and abs(value) <= _INT64_MAX:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_to_int(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_to_int(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class RequestValidator:
    """The compiled checks of one operation."""

    operation: Operation
    body: jsonschema_rs.Draft202012Validator | None
    body_required: bool
    body_model: type[BaseModel] | None
    path: jsonschema_rs.Draft202012Validator | None
    query: jsonschema_rs.Draft202012Validator | None
    query_types: dict[str, str]
    header: jsonschema_rs.Draft202012Validator | None
    header_names: tuple[str, ...]

    def header_params(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The declared headers (lower-case names), validated; security headers excluded."""
        params = {name: headers[name] for name in self.header_names if name in headers}
        if self.header is not None:
            problems = _problems(self.header, params)
            if problems:
                raise InvalidRequest("invalid header", details={"errors": problems})
        return params

    def path_params(self, raw: dict[str, str]) -> dict[str, str]:
        if self.path is not None:
            problems = _problems(self.path, raw)
            if problems:
                raise InvalidRequest("invalid path parameter", details={"errors": problems})
        return raw

    def query_params(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, value in pairs:
            if name in params:
                raise InvalidRequest(f"query parameter {name!r} is given more than once")
            declared = self.query_types.get(name)
            params[name] = (
                int(value) if declared == "integer" and _INTEGER.fullmatch(value) else value
            )
        if self.query is not None:
            problems = _problems(self.query, params)
            if problems:
                raise InvalidRequest("invalid query parameter", details={"errors": problems})
        return params

    def body_value(self, raw: bytes, content_type: str | None) -> tuple[Any, BaseModel | None]:
        """The validated body as a JSON document and as the generated model (when there is
        one); (None, None) when the request has no body."""
        if not raw:
            if self.body_required:
                raise InvalidRequest("this operation needs a JSON request body")
            return None, None
        if self.body is None:
            raise InvalidRequest("this operation takes no request body")
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise UnsupportedMediaType(
                f"request body must be application/json, not {media_type or 'untyped'}"
            )
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("request body is not UTF-8") from exc
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
        problems = _problems(self.body, document)
        if problems:
            raise InvalidRequest("invalid request body", details={"errors": problems})
        # JSON Schema counts 238.0 as the integer 238, and so does opase: inside, integers
        # are ints (amounts travel as strings; no spec here has a `number` field).
        document = _integral_floats_to_int(document)
        if self.body_model is None:
            return document, None
        try:
            return document, self.body_model.model_validate(document)
        except ValidationError as exc:
            # The spec's schema passed; the model is stricter in a few places (strict types).
            details = [
                {"path": "/" + "/".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()[:ERRORS_REPORTED_COUNT_MAX]
            ]
            raise InvalidRequest("invalid request body", details={"errors": details}) from exc


def load_validators(operations: tuple[Operation, ...]) -> dict[str, RequestValidator]:
    """Compile every operation's request schemas (once, at start-up)."""
    text = resources.files("opase_generated").joinpath("request_schemas.json").read_text()
    schemas = json.loads(text)
    validators = {}
    for operation in operations:
        entry = schemas[operation.operation_id]
        validators[operation.operation_id] = RequestValidator(
            operation=operation,
            body=_compile(entry["body"]),
            body_required=entry["bodyRequired"],
            body_model=_import(operation.request_model) if operation.request_model else None,
            path=_compile(entry["path"]),
            query=_compile(entry["query"]),
            query_types=entry["queryTypes"],
            header=_compile(entry["header"]),
            header_names=tuple(sorted((entry["header"] or {}).get("properties", {}))),
        )
    assert validators.keys() == {op.operation_id for op in operations}
    return validators
