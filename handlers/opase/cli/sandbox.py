"""`opase sandbox`: two seeded ASEs on loopback, in one process, ready in well under 2 s.

Each ASE has its own database (SQLite in `<data dir>/<name>/`, made fresh at every start),
assets, owners with a demo login, wallet addresses and balances. The manifest printed (and
written with `--manifest`) is a documented contract: scripts read every URL and credential
from it. Ctrl-C stops both servers cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from opase.amounts import format_amount
from opase.app import build_admin_app, build_app
from opase.ledger import balance_minor, deposit
from opase.security.key_pairs import generate_key_pair
from opase.services import Services
from opase.settings import Settings
from opase.storage.migrate import upgrade
from opase.wallets.directory import add_key, create_asset, create_owner, create_wallet_address

STARTUP_TIMEOUT_S = 10.0
ADMIN_PORT_OFFSET = 100
"""An ASE at port P has its admin API at P + 100."""
DEMO_CLIENT_PATH = "/demo-client"
DEMO_CLIENT_KEY_ID = "demo-client-key"


@dataclass(frozen=True)
class SeedAccount:
    path: str
    public_name: str
    username: str
    balance_minor: int


@dataclass(frozen=True)
class SeedAse:
    name: str
    asset_code: str
    asset_scale: int
    accounts: tuple[SeedAccount, ...]


SEED: tuple[SeedAse, ...] = (
    SeedAse(
        name="alpha-bank",
        asset_code="USD",
        asset_scale=2,
        accounts=(
            SeedAccount("/alice", "Alice Smith", "alice", 100_000),
            SeedAccount("/bob", "Bob Jones", "bob", 50_000),
        ),
    ),
    SeedAse(
        name="beta-wallet",
        asset_code="EUR",
        asset_scale=2,
        accounts=(SeedAccount("/carol", "Carol Diaz", "carol", 75_000),),
    ),
)


async def seed_ase(settings: Settings, ase: SeedAse) -> dict[str, Any]:
    """Migrate and fill one ASE's database; return its manifest entry."""
    await upgrade(settings)
    services = Services.create(settings)
    wallet_addresses = []
    try:
        async with services.sessions() as session:
            asset = await create_asset(session, ase.asset_code, ase.asset_scale)
            for account in ase.accounts:
                password = secrets.token_urlsafe(9)
                owner = await create_owner(session, account.username, password)
                wallet_address = await create_wallet_address(
                    session,
                    account.path,
                    asset.id,
                    account.public_name,
                    owner_id=owner.id,
                    reserved_paths=settings.reserved_wallet_address_paths,
                )
                await deposit(
                    session,
                    wallet_address.id,
                    account.balance_minor,
                    f"sandbox-seed-{account.path}",
                )
                balance = await balance_minor(session, wallet_address.id)
                assert balance == account.balance_minor
                wallet_addresses.append({
                    "url": f"{settings.public_url}{account.path}",
                    "publicName": account.public_name,
                    "assetCode": ase.asset_code,
                    "assetScale": ase.asset_scale,
                    "balance": str(balance),
                    "owner": {"username": account.username, "password": password},
                })  # fmt: skip
            clients = [await _seed_demo_client(session, settings, asset.id)]
            await session.commit()
    finally:
        await services.close()
    return {
        "name": ase.name,
        "authServer": settings.auth_server_url,
        "resourceServer": settings.resource_server_url,
        "adminApi": settings.admin_url,
        "adminApiKey": settings.admin_api_keys[0].get_secret_value(),
        "walletAddresses": wallet_addresses,
        "clients": clients,
    }


async def _seed_demo_client(
    session: AsyncSession, settings: Settings, asset_id: uuid.UUID
) -> dict[str, str]:
    """A client identity: a wallet address whose jwks.json publishes a key the manifest gives
    the private half of, so the official client can sign requests at once."""
    wallet_address = await create_wallet_address(
        session,
        DEMO_CLIENT_PATH,
        asset_id,
        "Demo Client App",
        reserved_paths=settings.reserved_wallet_address_paths,
    )
    x, private_key_pem = generate_key_pair()
    await add_key(session, wallet_address.id, DEMO_CLIENT_KEY_ID, x)
    return {
        "walletAddress": f"{settings.public_url}{DEMO_CLIENT_PATH}",
        "keyId": DEMO_CLIENT_KEY_ID,
        "privateKey": private_key_pem,
        "privateKeyFormat": "pkcs8-pem",
    }


class _QuietServer(uvicorn.Server):
    """Two servers share one loop: signals are handled once, by `run_sandbox`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def ase_settings(host: str, port: int, data_dir: Path, name: str) -> Settings:
    # Explicit values win over OPASE_* variables, so a developer's environment cannot
    # point the sandbox at a real database.
    return Settings(
        admin_host=host,
        admin_port=port + ADMIN_PORT_OFFSET,
        admin_api_keys=[secrets.token_urlsafe(24)],
        public_url=f"http://{host}:{port}",
        auth_server_url="",
        resource_server_url="",
        data_dir=data_dir / name,
        database_url="",
        host=host,
        port=port,
        client_keys_allow_loopback_http=True,
    )


async def _serve(host: str, first_port: int, data_dir: Path, manifest_path: Path | None) -> None:
    configs = [ase_settings(host, first_port + i, data_dir, ase.name) for i, ase in enumerate(SEED)]
    # One after the other: Alembic's migration context is process-global.
    ases = [await seed_ase(s, ase) for s, ase in zip(configs, SEED, strict=True)]
    servers = []
    shared_services = []
    for settings in configs:
        public = build_app(settings)
        shared_services.append(public.state.services)
        # One Services per ASE: an admin change is seen by its public server at once.
        admin = build_admin_app(settings, public.state.services)
        for app, port in ((public, settings.port), (admin, settings.admin_port)):
            config = uvicorn.Config(
                app, host=host, port=port, loop="none", log_level="warning",
                access_log=False, lifespan="off",
            )  # fmt: skip
            servers.append(_QuietServer(config))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    deadline_s = loop.time() + STARTUP_TIMEOUT_S
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks) or loop.time() > deadline_s:
            stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise SystemExit("opase sandbox: a server failed to start (is the port in use?)")
        await asyncio.sleep(0.01)
    manifest = {"ases": ases}
    if manifest_path is not None:
        _write_manifest(manifest, manifest_path)
    _print_manifest(manifest, manifest_path)
    await asyncio.gather(*tasks)
    for services in shared_services:
        await services.close()
    print("opase sandbox stopped", flush=True)


def _write_manifest(manifest: dict[str, Any], manifest_path: Path) -> None:
    # Written whole under a temporary name, then renamed: a reader never sees half of it.
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    partial = manifest_path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(manifest_path)


def _print_manifest(manifest: dict[str, Any], manifest_path: Path | None) -> None:
    lines = ["opase sandbox is running (Ctrl-C stops it)", ""]
    for ase in manifest["ases"]:
        lines += [
            f"{ase['name']}",
            f"  auth server      {ase['authServer']}",
            f"  resource server  {ase['resourceServer']}",
            f"  admin API        {ase['adminApi']}   (Authorization: Bearer {ase['adminApiKey']})",
            f"  consent pages    {ase['walletAddresses'][0]['url'].rsplit('/', 1)[0]}/idp"
            "   (an interactive grant's interact.redirect leads there; owners log in below)",
        ]
        for wallet in ase["walletAddresses"]:
            shown = format_amount(wallet["balance"], wallet["assetCode"], wallet["assetScale"])
            lines.append(
                f"  {wallet['url']:<32} {shown:>14}   "
                f"login {wallet['owner']['username']} / {wallet['owner']['password']}"
            )
        for client in ase["clients"]:
            lines.append(
                f"  client identity  {client['walletAddress']}  key {client['keyId']} "
                "(private key in the manifest, PKCS#8 PEM)"
            )
        lines.append("")
    if manifest_path is not None:
        lines.append(f"manifest: {manifest_path}")
    lines.append("manifest JSON:")
    lines.append(json.dumps(manifest))
    print("\n".join(lines), flush=True)


def run_sandbox(*, host: str, first_port: int, data_dir: Path, manifest_path: Path | None) -> int:
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        print("opase sandbox binds loopback addresses only", file=sys.stderr)
        return 2
    # Fresh at every start: scripts rely on the seeded balances.
    if data_dir.exists():
        shutil.rmtree(data_dir)
    asyncio.run(_serve(host, first_port, data_dir, manifest_path))
    return 0
