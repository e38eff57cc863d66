"""The provider interface: five endpoints, each returning the payload exactly as received."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

OutputSize = Literal["compact", "full"]
OUTPUT_SIZES: tuple[str, ...] = get_args(OutputSize)
COMPACT_SESSIONS = 100  # what outputsize=compact returns: the latest 100 sessions


@dataclass(frozen=True)
class Payload:
    """One successful response.

    Attributes:
        body: the bytes exactly as the API returned them (what lands in RAW).
        data: the parsed JSON of `body`.
        params: request parameters without the API key.
        endpoint: the URL without query string.
        warnings: defects that do not stop landing (missing or unexpected fields).
    """

    symbol: str
    function: str
    body: bytes
    data: dict[str, Any]
    http_status: int
    params: dict[str, str]
    endpoint: str
    elapsed_seconds: float
    attempts: int
    warnings: tuple[str, ...] = field(default_factory=tuple)


class MarketDataProvider(Protocol):
    """A market-data source. `name` is the RAW provider folder (`synthetic`, `alpha_vantage`)."""

    name: str

    def daily_bars(self, symbol: str, outputsize: OutputSize, *, deadline: float | None = None) -> Payload:
        """Daily series of one symbol: the latest 100 sessions (compact) or all (full)."""
        ...

    def overview(self, symbol: str, *, deadline: float | None = None) -> Payload:
        """Company overview (the security master record)."""
        ...

    def splits(self, symbol: str, *, deadline: float | None = None) -> Payload:
        """Every split of the symbol (its whole history: the endpoint has no window)."""
        ...

    def dividends(self, symbol: str, *, deadline: float | None = None) -> Payload:
        """Every dividend of the symbol, declared ones not yet ex included."""
        ...

    def global_quote(self, symbol: str, *, deadline: float | None = None) -> Payload:
        """Latest quote."""
        ...

    def close(self) -> None: ...
