"""The `opase` command: serve, migrate, sandbox."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from opase import __version__
from opase.cli.admin import add_admin_parser
from opase.settings import Settings

LISTENER_STOP_TIMEOUT_S = 10


def _apply_overrides(args: argparse.Namespace) -> None:
    # Through the environment, so uvicorn's worker processes build the same settings.
    if getattr(args, "config", None):
        if not args.config.is_file():
            raise SystemExit(f"opase: settings file {args.config} does not exist")
        os.environ["OPASE_CONFIG"] = str(args.config.resolve())
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"OPASE_{name.upper()}"] = str(value)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"opase: invalid settings: {problems}") from exc


def command_migrate(args: argparse.Namespace) -> int:
    from opase.storage.migrate import upgrade_sync

    settings = _settings()
    upgrade_sync(settings)
    print(f"database is at the newest schema: {settings.database_url_resolved}")
    return 0


def command_serve(args: argparse.Namespace) -> int:
    from opase.app import ROLES_ENV, check_roles, parse_roles, serves_introspection
    from opase.cli.serve import config_for, serve
    from opase.storage.migrate import upgrade_sync

    settings = _settings()
    roles = parse_roles([args.role])
    try:
        check_roles(settings, roles)
    except ValueError as exc:
        raise SystemExit(f"opase: cannot serve --role {args.role}: {exc}") from exc
    # Through the environment, like the settings, to uvicorn's worker processes.
    os.environ[ROLES_ENV] = ",".join(roles)
    if not args.no_migrate:
        upgrade_sync(settings)
    listeners = [_start_admin_listener(settings)]
    if serves_introspection(roles):
        listeners.append(_start_introspection_listener(settings))
    try:
        serve(
            config_for(
                "opase.app:create_app",
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                access_log=args.access_log,
                log_level="info",
            )
        )
    finally:
        for listener in listeners:
            if listener is not None:
                listener.terminate()
                listener.wait(timeout=LISTENER_STOP_TIMEOUT_S)
    return 0


def _start_admin_listener(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The admin API in a process of its own (one worker), beside the public workers."""
    if not settings.admin_api_keys:
        logging.getLogger("opase").warning(
            "admin API not started: set OPASE_ADMIN_API_KEYS to enable it"
        )
        return None
    command = [
        sys.executable, "-m", "uvicorn", "opase.app:create_admin_app", "--factory",
        "--host", settings.admin_host, "--port", str(settings.admin_port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    ]  # fmt: skip
    # The environment carries the settings; the command is ours, not user input.
    return subprocess.Popen(command)  # noqa: S603


def _start_introspection_listener(settings: Settings) -> subprocess.Popen[bytes]:
    """The token introspection API (`--role auth`) for the resource server in other
    processes: one worker of its own, on `introspection_host` (loopback by default)."""
    if settings.introspection_api_key is None:
        logging.getLogger("opase").info(
            "introspection listener on %s:%d without a key: keep it off public networks "
            "(or set OPASE_INTROSPECTION_API_KEY)",
            settings.introspection_host, settings.introspection_port,
        )  # fmt: skip
    command = [
        sys.executable, "-m", "uvicorn", "opase.app:create_introspection_app", "--factory",
        "--host", settings.introspection_host, "--port", str(settings.introspection_port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    ]  # fmt: skip
    return subprocess.Popen(command)  # noqa: S603


def command_sandbox(args: argparse.Namespace) -> int:
    from opase.cli.sandbox import run_sandbox

    return run_sandbox(
        host=args.host or "127.0.0.1",
        first_port=args.port or 4000,
        data_dir=args.data_dir,
        manifest_path=args.manifest,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opase", description="Open Payments server for ASEs")
    parser.add_argument("--version", action="version", version=f"opase {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the Open Payments servers")
    serve.add_argument("--config", type=Path, help="TOML settings file (see README)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--no-migrate", action="store_true", help="skip schema migrations")
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument(
        "--role",
        choices=("all", "auth", "resource", "wallet"),
        default="all",
        help="which servers to run here: all (default) or one; `resource` needs "
        "OPASE_INTROSPECTION_URL, and `auth` also starts the introspection listener",
    )
    serve.set_defaults(run=command_serve)

    migrate = commands.add_parser("migrate", help="bring the database to the newest schema")
    migrate.add_argument("--config", type=Path)
    migrate.set_defaults(run=command_migrate)

    sandbox = commands.add_parser("sandbox", help="two seeded ASEs on loopback, for trying")
    sandbox.add_argument("--host", help="loopback address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, help="first ASE's port; the second gets port+1")
    sandbox.add_argument("--data-dir", type=Path, default=Path(".opase/sandbox"))
    sandbox.add_argument("--manifest", type=Path, help="also write the manifest JSON here")
    sandbox.set_defaults(run=command_sandbox)

    add_admin_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic narrates every plugin it loads; its warnings and errors still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _apply_overrides(args)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
