"""The specs drive the routes and models: every operation has a handler, regeneration follows
the specs, and upstream files and patches are guarded."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from codegen import config, generate, patches, sync
from opase_generated.routes import OPERATIONS
from tests.operations import IMPLEMENTED_OPERATIONS
from tests.repo import REPO


def spec_operations() -> set[tuple[str, str, str, str]]:
    """(spec, method, path, operationId) read straight from the upstream YAML."""
    found = set()
    for spec in config.SPECS:
        document = yaml.safe_load(spec.path.read_text())
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method in generate.HTTP_METHODS:
                    found.add((spec.name, method.upper(), path, operation["operationId"]))
    return found


def test_every_spec_operation_has_exactly_one_route() -> None:
    routed = {(op.spec, op.method, op.path, op.operation_id) for op in OPERATIONS}
    assert routed == spec_operations()
    assert len(OPERATIONS) == len(routed)


def test_every_route_names_an_async_handler_that_exists() -> None:
    for op in OPERATIONS:
        module_name, _, function_name = op.handler.partition(":")
        handler = getattr(importlib.import_module(module_name), function_name)
        assert callable(handler), op.operation_id
        if op.request_model:
            module_name, _, class_name = op.request_model.partition(":")
            assert hasattr(importlib.import_module(module_name), class_name)


def test_every_operation_of_the_specs_is_implemented() -> None:
    implemented = {(spec, op_id) for spec, ids in IMPLEMENTED_OPERATIONS.items() for op_id in ids}
    assert {(op.spec, op.operation_id) for op in OPERATIONS} == implemented


@pytest.fixture
def sandbox_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of specs/ and handlers/ that codegen reads instead of the real ones."""
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    shutil.copytree(REPO / "handlers", tmp_path / "handlers")
    moved = {
        name: tmp_path / getattr(config, name).relative_to(REPO)
        for name in ("SPECS_DIR", "HANDLERS_DIR", "LOCK_FILE", "PATCH_FILE")
    }
    for module in (config, generate, patches, sync):
        for name, path in moved.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, path)
    specs = tuple(
        config.SpecConfig(s.name, s.server, s.models_module, upstream=False) for s in config.SPECS
    )
    monkeypatch.setattr(generate, "SPECS", specs)
    monkeypatch.setattr(sync, "SPECS", specs)
    return tmp_path


def test_changing_a_spec_field_changes_the_generated_model(sandbox_repo: Path) -> None:
    spec_file = sandbox_repo / "specs" / "wallet-address-server.yaml"
    out_before, out_after = sandbox_repo / "before", sandbox_repo / "after"
    generate.generate(out_before)
    document = yaml.safe_load(spec_file.read_text())
    properties = document["components"]["schemas"]["wallet-address"]["properties"]
    properties["assetScale"]["maximum"] = 18
    properties["displayColour"] = {"type": "string"}
    spec_file.write_text(yaml.safe_dump(document))
    generate.generate(out_after)
    before = (out_before / "models_wallet_address.py").read_text()
    after = (out_after / "models_wallet_address.py").read_text()
    assert "le=255" in before and "le=18" not in before
    assert "le=18" in after and "displayColour: StrictStr | None" in after
    schemas = json.loads((out_after / "request_schemas.json").read_text())
    assert set(schemas) == {op.operation_id for op in OPERATIONS}


def test_an_operation_without_handler_fails_generation(sandbox_repo: Path) -> None:
    quotes = sandbox_repo / "handlers" / "opase" / "api" / "resource" / "quote.py"
    quotes.write_text(quotes.read_text().replace("async def get_quote", "async def get_quote_x"))
    with pytest.raises(
        generate.GenerationError, match=r"get-quote -> handlers/opase/api/resource/quote\.py"
    ):
        generate.generate(sandbox_repo / "out")


def test_an_untagged_operation_fails_generation(sandbox_repo: Path) -> None:
    spec_file = sandbox_repo / "specs" / "resource-server.yaml"
    document = yaml.safe_load(spec_file.read_text())
    document["paths"]["/quotes"]["post"]["tags"] = ["unknown"]
    spec_file.write_text(yaml.safe_dump(document))
    with pytest.raises(generate.GenerationError, match="create-quote"):
        generate.generate(sandbox_repo / "out")


def test_a_hand_edited_upstream_spec_is_refused(
    sandbox_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "SPECS", config.SPECS)
    spec_file = sandbox_repo / "specs" / "auth-server.yaml"
    spec_file.write_text(spec_file.read_text().replace("Auth Server", "Auth  Server", 1) + "\n")
    with pytest.raises(sync.SyncError, match="differs from the npm package"):
        sync.verify_lock()


def test_a_patch_whose_upstream_text_changed_fails(sandbox_repo: Path) -> None:
    spec_file = sandbox_repo / "specs" / "resource-server.yaml"
    document = yaml.safe_load(spec_file.read_text())
    response = document["paths"]["/incoming-payments/{id}/complete"]["post"]["responses"]["200"]
    del response["content"]["application/json"]["schema"]["additionalProperties"]
    spec_file.write_text(yaml.safe_dump(document))
    with pytest.raises(patches.PatchError, match="test failed"):
        generate.generate(sandbox_repo / "out")


def test_the_complete_incoming_payment_patch_is_applied() -> None:
    document = json.loads(
        (REPO / "generated" / "opase_generated" / "specs" / "resource-server.json").read_text()
    )
    schema = document["paths"]["/incoming-payments/{id}/complete"]["post"]["responses"]["200"][
        "content"
    ]["application/json"]["schema"]
    assert schema == {
        "$ref": "#/components/schemas/incoming-payment",
        "unevaluatedProperties": False,
    }


def test_the_list_incoming_payments_patch_is_applied() -> None:
    document = json.loads(
        (REPO / "generated" / "opase_generated" / "specs" / "resource-server.json").read_text()
    )
    schema = document["paths"]["/incoming-payments"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert schema["properties"]["result"]["items"] == {
        "$ref": "#/components/schemas/incoming-payment",
        "unevaluatedProperties": False,
    }


def test_lock_records_the_pinned_package() -> None:
    lock = sync.verify_lock()
    assert lock["package"] == "@interledger/open-payments"
    assert lock["version"] == "7.4.0" and lock["specVersion"] == "1.3.0"
    assert lock["integrity"].startswith("sha512-")


def test_generated_is_up_to_date() -> None:
    assert generate.check() == []
