"""Reading a body of bounded size, whoever sends it (a client's request, a provider's answer)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable


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
