"""Developer and CI entry points: `nox -s tests`, `nox -s sandbox`, and the rest."""

from __future__ import annotations

import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "codegen", "lint"]

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints.txt")


def install(session: nox.Session, *extras: str) -> None:
    target = f".[{','.join(extras)}]" if extras else "."
    session.install(*CONSTRAINTS, "-e", target)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, on SQLite and on a throwaway PostgreSQL cluster."""
    install(session, "test", "codegen")
    # Debian's chromium for the consent-page browser tests, when the machine lacks it.
    if shutil.which("chromium") is None:
        session.run("bash", ".ci/install-chromium", external=True)
    # The official Open Payments JavaScript libraries, exactly as locked (tests/node_oracle.py).
    session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix", "tests/node", external=True)
    # A worker per core (tests/conftest.py: each has its own databases and PostgreSQL
    # cluster, and its own slice of ports); loadgroup keeps the server-starting tests on one
    # worker, one at a time. `nox -s tests -- -n 0` runs in one process.
    session.run("pytest", "-n", "auto", "--dist", "loadgroup", *session.posargs)


@nox.session(python=PYTHON)
def codegen(session: nox.Session) -> None:
    """Regenerate generated/ from specs/ (`-- --check`: fail when it is stale)."""
    install(session, "codegen")
    if "--check" in session.posargs:
        session.run("python", "-m", "codegen", "generate", "--check")
    elif "sync" in session.posargs:
        session.run("python", "-m", "codegen", *session.posargs)
    else:
        session.run("python", "-m", "codegen", "generate")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, the import contracts and mypy --strict over the hand-written code."""
    # mypy reads the checkout itself (mypy_path: handlers/, generated/): no install of opase.
    install(session, "lint", "test", "codegen")
    session.run("ruff", "check", "handlers", "codegen", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "handlers", "codegen", "tests", "noxfile.py")
    session.run("lint-imports")  # the layering contracts of pyproject.toml
    session.run("mypy", "-p", "opase")
    session.run("mypy", "codegen")


@nox.session(python=PYTHON)
def sandbox(session: nox.Session) -> None:
    """Two seeded ASEs on loopback; prints every URL and demo login (Ctrl-C stops)."""
    install(session)
    session.run("opase", "sandbox", *session.posargs)


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """schemathesis against a running sandbox, for each spec with handlers."""
    install(session, "test")
    session.run("pytest", "tests/conformance", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput and latency against a bare Starlette baseline (see README)."""
    install(session, "test", "bench")
    session.run("python", "-m", "tests.bench", *session.posargs)


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """Reliability: kill -9 and restarts under payment load, then the audit (see tests/chaos)."""
    install(session, "test")
    session.run("python", "-m", "tests.chaos", *session.posargs)
