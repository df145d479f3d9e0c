"""python -m codegen {sync [--version X] | generate [--check]}"""

from __future__ import annotations

import argparse
import json
import sys

from codegen.config import GENERATED_DIR, LOCK_FILE
from codegen.generate import GenerationError, check, generate
from codegen.patches import PatchError
from codegen.sync import SyncError, sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sync_parser = commands.add_parser("sync", help="fetch the upstream specs from npm")
    sync_parser.add_argument(
        "--version", help="package version (default: the one in specs/upstream.lock.json)"
    )
    generate_parser = commands.add_parser("generate", help="write generated/ from specs/")
    generate_parser.add_argument(
        "--check", action="store_true", help="fail when generated/ is not what specs/ make"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "sync":
            version = args.version or json.loads(LOCK_FILE.read_text())["version"]
            lock = sync(version)
            print(
                f"specs/ now hold {lock['package']}@{lock['version']} (spec {lock['specVersion']})"
            )
            print("next: python -m codegen generate")
        elif args.check:
            differences = check()
            if differences:
                print("generated/ is not what specs/ + codegen/ produce:", file=sys.stderr)
                for line in differences:
                    print(f"  {line}", file=sys.stderr)
                print("run: python -m codegen generate", file=sys.stderr)
                return 1
            print("generated/ is up to date")
        else:
            for path in generate(GENERATED_DIR):
                print(f"wrote {path.relative_to(GENERATED_DIR.parent.parent)}")
    except (SyncError, GenerationError, PatchError) as exc:
        print(f"codegen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
