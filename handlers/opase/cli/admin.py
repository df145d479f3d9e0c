"""`opase admin ...`: the back office from a shell, on the same service code as the admin
API (not over HTTP to itself). Amounts are integers in minor units. Errors go to stderr with
a non-zero exit; results are printed as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from opase import ledger
from opase.security.key_pairs import generate_key_pair, public_jwk
from opase.services import Services
from opase.settings import Settings
from opase.wallets import directory as wallets

Command = Callable[[AsyncSession, argparse.Namespace, Settings], Awaitable[Any]]
AMOUNT = re.compile(r"[1-9][0-9]{0,18}")


def _asset(value: str) -> tuple[str, int]:
    code, _, scale = value.partition(":")
    if not code or not scale.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: give the asset as CODE:SCALE, e.g. USD:2")
    return code, int(scale)


def _jwk_file(value: str) -> dict[str, Any]:
    try:
        jwk = json.loads(Path(value).read_text())
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{value}: not a readable JSON file ({exc})") from exc
    if not isinstance(jwk, dict):
        raise argparse.ArgumentTypeError(f"{value}: a JWK is a JSON object")
    return jwk


def _amount(value: str) -> int:
    if not AMOUNT.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: an amount is a positive whole number of minor units (e.g. 2500)"
        )
    return int(value)


async def _wallet_view(session: AsyncSession, settings: Settings, path: str) -> dict[str, Any]:
    record = await wallets.get_wallet_address_admin(
        session, await wallets.wallet_address_id_by_path(session, path)
    )
    return {
        "id": str(record.id), "url": f"{settings.public_url}{record.path}",
        "publicName": record.public_name, "asset": f"{record.asset_code}:{record.asset_scale}",
        "owner": record.owner_username, "status": record.status,
    }  # fmt: skip


async def asset_create(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    code, scale = args.asset
    asset = await wallets.create_asset(session, code, scale)
    return {"id": str(asset.id), "code": asset.code, "scale": asset.scale}


async def asset_list(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    return [
        {"id": str(a.id), "code": a.code, "scale": a.scale}
        for a in await wallets.list_assets(session)
    ]


async def wallet_create(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> Any:
    asset = await wallets.asset_by_code(session, *args.asset)
    owner_id = None
    if args.owner:
        if not args.password:
            raise ValueError("--owner needs --password")
        owner_id = (await wallets.create_owner(session, args.owner, args.password)).id
    await wallets.create_wallet_address(
        session,
        args.path,
        asset.id,
        args.public_name,
        owner_id,
        reserved_paths=settings.reserved_wallet_address_paths,
    )
    return await _wallet_view(session, settings, args.path)


async def wallet_show(session: AsyncSession, args: argparse.Namespace, settings: Settings) -> Any:
    return await _wallet_view(session, settings, args.path)


async def wallet_deactivate(
    session: AsyncSession, args: argparse.Namespace, settings: Settings
) -> Any:
    await wallets.deactivate_wallet_address(
        session, await wallets.wallet_address_id_by_path(session, args.path)
    )
    return await _wallet_view(session, settings, args.path)


async def key_add(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    wallet_address_id = await wallets.wallet_address_id_by_path(session, args.path)
    result: dict[str, Any] = {}
    if args.jwk:
        jwk = args.jwk
        if (jwk.get("kty"), jwk.get("crv"), jwk.get("alg", "EdDSA")) != ("OKP", "Ed25519", "EdDSA"):
            raise ValueError("the JWK must be an Ed25519 public key (kty OKP, crv Ed25519)")
        key_id, x = args.key_id or jwk.get("kid"), jwk.get("x")
        if not key_id or not isinstance(x, str):
            raise ValueError("the JWK needs `x`, and a `kid` (or give --key-id)")
    else:
        key_id = args.key_id or "key-1"
        x, result["privateKeyPem"] = generate_key_pair()
    await wallets.add_key(session, wallet_address_id, key_id, x)
    return {"jwk": public_jwk(key_id, x), **result}


async def key_revoke(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    await wallets.revoke_key(
        session, await wallets.wallet_address_id_by_path(session, args.path), args.key_id
    )
    return {"revoked": args.key_id}


async def _move(session: AsyncSession, args: argparse.Namespace, direction: str) -> Any:
    wallet_address_id = await wallets.wallet_address_id_by_path(session, args.path)
    move = ledger.deposit if direction == "deposit" else ledger.withdraw
    key = f"admin-{direction}:{args.idempotency_key}"
    transfer_id = await move(session, wallet_address_id, args.amount, key)
    return {
        "id": str(transfer_id),
        "balance": str(await ledger.balance_minor(session, wallet_address_id)),
    }


async def deposit(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    return await _move(session, args, "deposit")


async def withdraw(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    return await _move(session, args, "withdrawal")


async def balance(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    wallet_address_id = await wallets.wallet_address_id_by_path(session, args.path)
    account = await ledger.wallet_account(session, wallet_address_id)
    found = await ledger.balance(session, account.id)
    return {"balance": str(found.posted_minor), "available": str(found.available_minor)}


async def audit(session: AsyncSession, args: argparse.Namespace, _: Settings) -> Any:
    differences = await ledger.audit(session)
    if differences:
        for difference in differences:
            print(f"difference: {difference}", file=sys.stderr)
        raise ValueError(f"the ledger audit found {len(differences)} difference(s)")
    return {"audit": "clean"}


def add_admin_parser(commands: Any) -> None:
    admin = commands.add_parser("admin", help="the back office: assets, wallet addresses, money")
    admin.add_argument("--config", type=Path, help="TOML settings file")
    verbs = admin.add_subparsers(dest="admin_command", required=True)

    def verb(
        name: str, run: Command, help_text: str, parent: Any = verbs
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        parser.set_defaults(run=run_admin, admin_run=run)
        return parser

    asset = verbs.add_parser("asset", help="assets").add_subparsers(
        dest="asset_command", required=True
    )
    verb("create", asset_create, "create an asset", asset).add_argument(
        "asset", type=_asset, metavar="CODE:SCALE"
    )
    verb("list", asset_list, "list assets", asset)

    wallet = verbs.add_parser("wallet-address", help="wallet addresses").add_subparsers(
        dest="wallet_command", required=True
    )
    create = verb("create", wallet_create, "create a wallet address", wallet)
    create.add_argument("path", help="URL path under the public URL, e.g. /alice")
    create.add_argument("--asset", type=_asset, required=True, metavar="CODE:SCALE")
    create.add_argument("--public-name")
    create.add_argument("--owner", help="username of the owner's consent-page login")
    create.add_argument("--password")
    verb("show", wallet_show, "show a wallet address", wallet).add_argument("path")
    verb("deactivate", wallet_deactivate, "deactivate (its URL then 404s)", wallet).add_argument(
        "path"
    )

    key = verbs.add_parser("key", help="client keys").add_subparsers(
        dest="key_command", required=True
    )
    add = verb("add", key_add, "register a JWK (--jwk FILE) or generate a key pair", key)
    add.add_argument("path")
    add.add_argument("--jwk", type=_jwk_file, help="file holding the public JWK")
    add.add_argument("--key-id")
    revoke = verb("revoke", key_revoke, "revoke a key", key)
    revoke.add_argument("path")
    revoke.add_argument("key_id")

    for name, run in (("deposit", deposit), ("withdraw", withdraw)):
        parser = verb(
            name, run, f"{name} minor units (money {'in' if name == 'deposit' else 'out'})"
        )
        parser.add_argument("path")
        parser.add_argument("amount", type=_amount)
        parser.add_argument("--idempotency-key", required=True, help="money moves once per key")
    verb("balance", balance, "posted and available balance").add_argument("path")
    verb("audit", audit, "recompute balances from the transfer history")


def run_admin(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        result = asyncio.run(_in_transaction(settings, args))
    except (LookupError, ValueError, TypeError, ledger.LedgerError) as exc:
        print(f"opase admin: {exc}", file=sys.stderr)
        return 1
    except IntegrityError:
        print(
            "opase admin: conflicts with an existing record (a unique value is taken)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(result, indent=2))
    return 0


async def _in_transaction(settings: Settings, args: argparse.Namespace) -> Any:
    services = Services.create(settings)
    try:
        async with services.sessions() as session:
            result = await args.admin_run(session, args, settings)
            await session.commit()
            return result
    finally:
        await services.close()
