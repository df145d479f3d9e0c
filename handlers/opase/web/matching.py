"""Which server and operation a request is for: the generated route table as regular
expressions, per server at its public base URL. Exact URLs only: no trailing-slash
redirects, because a signature covers `@target-uri`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from opase.errors import MethodNotAllowed, NotFound
from opase_generated.routes import OPERATIONS, Operation

WALLET_ADDRESS_SERVER = "wallet_address"


@dataclass(frozen=True, slots=True)
class Match:
    operation: Operation
    server_url: str
    server_origin: str
    """`scheme://host[:port]` of the server's public URL."""
    relative_path: str
    """The path within the server, as the spec writes it (`/incoming-payments/abc`)."""
    path_params: dict[str, str]
    wallet_address_path: str | None = None


@dataclass(frozen=True, slots=True)
class _Route:
    operation: Operation
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Server:
    name: str
    url: str
    origin: str
    host: str
    base_path: str
    routes: tuple[_Route, ...]


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{([A-Za-z0-9_-]+)\}", template)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part.replace('-', '_')}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


class RouteTable:
    """The routes of the servers one listener serves, each at its public base URL."""

    def __init__(self, server_urls: dict[str, str]) -> None:
        """`server_urls`: which servers (by the route table's `server` names), each at its
        public base URL."""
        servers = []
        for name, url in server_urls.items():
            parts = urlsplit(url)
            routes = tuple(
                _Route(op, _path_pattern(op.path)) for op in OPERATIONS if op.server == name
            )
            origin = f"{parts.scheme}://{parts.netloc}"
            servers.append(_Server(name, url, origin, parts.netloc, parts.path.rstrip("/"), routes))
        # Longest base path first, so `/auth` wins over the wallet addresses' catch-all.
        self.servers = sorted(servers, key=lambda server: len(server.base_path), reverse=True)
        # Hosts decide only when the servers are configured on different hosts.
        self.route_by_host = len({server.host for server in servers}) > 1

    def match(self, method: str, path: str, host: str) -> Match:
        for server in self.servers:
            if self.route_by_host and host != server.host:
                continue
            if (
                server.base_path
                and path != server.base_path
                and not path.startswith(server.base_path + "/")
            ):
                continue
            relative = path[len(server.base_path) :] or "/"
            if server.name == WALLET_ADDRESS_SERVER:
                return self._match_wallet_address(server, method, relative)
            return self._match_in(server, method, relative)
        raise NotFound(f"no resource at {path}")

    def _match_in(self, server: _Server, method: str, relative: str) -> Match:
        allowed = []
        for route in server.routes:
            found = route.pattern.match(relative)
            if found is None:
                continue
            if route.operation.method == method:
                return Match(
                    route.operation, server.url, server.origin, relative, found.groupdict()
                )
            allowed.append(route.operation.method)
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here", allowed_methods=allowed)
        raise NotFound(f"no resource at {server.base_path}{relative}")

    def _match_wallet_address(self, server: _Server, method: str, relative: str) -> Match:
        # `/alice/jwks.json` is the keys document of the wallet address `/alice`.
        chosen: _Route | None = None
        wallet_address_path = relative
        for route in server.routes:
            suffix = route.operation.path
            if suffix != "/" and relative.endswith(suffix):
                chosen, wallet_address_path = route, relative[: -len(suffix)]
                break
        if chosen is None:
            chosen = next(r for r in server.routes if r.operation.path == "/")
        if wallet_address_path in ("", "/"):
            raise NotFound("no wallet address at the server root")
        if method != chosen.operation.method:
            raise MethodNotAllowed(
                f"{method} is not allowed here", allowed_methods=[chosen.operation.method]
            )
        return Match(
            chosen.operation, server.url, server.origin, chosen.operation.path, {},
            wallet_address_path,
        )  # fmt: skip
