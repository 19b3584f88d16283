"""Time windows, re-exported: the value types live in :mod:`shulian.chain.window` so that the
tail reader (:mod:`shulian.io.reader`) resolves windows without importing a service."""

from shulian.chain.window import DEFAULT_TZ as DEFAULT_TZ
from shulian.chain.window import OffsetRange as OffsetRange
from shulian.chain.window import Window as Window
from shulian.chain.window import parse_time as parse_time
from shulian.chain.window import resolve_offsets as resolve_offsets
from shulian.chain.window import to_ms as to_ms

__all__ = ["DEFAULT_TZ", "OffsetRange", "Window", "parse_time", "resolve_offsets", "to_ms"]
