"""Reading a body of bounded size, whoever sends it (a client's request, a provider's answer)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


async def read_bounded(
    chunks: AsyncIterable[bytes],
    *,
    declared_length: str | None,
    size_bytes_max: int,
    too_large: Callable[[], Exception],
) -> bytes:
    """All of `chunks`, refused with `too_large()` as soon as the declared length or the
    bytes received pass `size_bytes_max`: a lying Content-Length cannot get more through."""
    if declared_length is not None and declared_length.isdigit():
        if int(declared_length) > size_bytes_max:
            raise too_large()
    received = []
    size_bytes = 0
    async for chunk in chunks:
        size_bytes += len(chunk)
        if size_bytes > size_bytes_max:
            raise too_large()
        received.append(chunk)
    return b"".join(received)


async def read_ok_answer(response: httpx.Response, *, size_bytes_max: int, what: str) -> bytes:
    """The body of another server's 200 answer (a streamed httpx response), at most
    `size_bytes_max` bytes; ValueError, naming `what`, for any other status or a larger body."""
    if response.status_code != 200:
        raise ValueError(f"{what}: HTTP {response.status_code}")
    return await read_bounded(
        response.aiter_bytes(),
        declared_length=response.headers.get("content-length"),
        size_bytes_max=size_bytes_max,
        too_large=lambda: ValueError(f"{what}: larger than {size_bytes_max} bytes"),
    )
