"""Bulk ``list<u8>`` conversion for wasmtime-py 50.0.1.

wasmtime-py 50 converts a ``list<u8>`` between Python ``bytes`` and the C API's value
list one element at a time, through a Python method call per byte: about 1 MiB/s,
which would dominate everything a TLS session moves. The C API's list is an array of
fixed-size tagged values, so a byte list is an array whose every element has the same
tag and one byte of payload: this module builds and reads that array with two strided
slice copies (C speed) instead.

It reaches into wasmtime-py's private modules, so it is pinned to the version it was
written and tested for, :data:`WRITTEN_FOR`. :func:`install` raises
:class:`~gateway_auth.errors.HostError` on any other version (or an unexpected value
layout), saying so; nothing is patched at import.
"""

from __future__ import annotations

import ctypes
import threading
from importlib import metadata
from typing import Any

from .errors import HostError

WRITTEN_FOR = "50.0.1"
"""The wasmtime-py version whose private value layout this module relies on."""

_installed = False
_lock = threading.Lock()
_originals: Any = None
"""wasmtime-py's own (per-byte) conversions, once replaced: (to C, from C)."""


def installed_version() -> str:
    """The installed wasmtime-py's version (``unknown`` when it has no metadata)."""
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "unknown"


def install() -> None:
    """Swaps wasmtime-py's byte-list conversion for the bulk one (once per process).

    Raises :class:`HostError` when the installed wasmtime-py is not
    :data:`WRITTEN_FOR`, or its value layout is not the one expected.
    """
    global _installed, _originals
    with _lock:
        if _installed:
            return
        found = installed_version()
        if found != WRITTEN_FOR:
            raise HostError(
                f"gateway_auth was written for wasmtime {WRITTEN_FOR} (its bulk byte-list "
                f"conversion uses that version's private value layout), but wasmtime "
                f"{found} is installed: pip install wasmtime=={WRITTEN_FOR}")
        from wasmtime import _ffi as ffi
        from wasmtime.component import _types

        val: Any = ffi.wasmtime_component_val_t
        union: Any = ffi.wasmtime_component_valunion_t
        size = ctypes.sizeof(val)
        byte_at = val.of.offset + union.u8.offset
        if not (val.kind.size == 1 and union.u8.offset == 0 and byte_at < size):
            raise HostError(
                f"wasmtime {found}'s component value layout is not the one gateway_auth "
                f"expects; reinstall wasmtime=={WRITTEN_FOR}")
        kind_at = val.kind.offset
        u8_tag = bytes([ffi.WASMTIME_COMPONENT_U8.value])
        list_kind = ffi.WASMTIME_COMPONENT_LIST.value
        to_c, from_c = _types.ListType.convert_to_c, _types.ListType.convert_from_c

        def convert_to_c(self: Any, store: Any, value: Any, ptr: Any) -> None:
            if not (self._is_bytes() and isinstance(value, (bytes, bytearray, memoryview))):
                return to_c(self, store, value, ptr)
            data = bytes(value)
            n = len(data)
            raw = ffi.wasmtime_component_vallist_t()
            ffi.wasmtime_component_vallist_new_uninit(raw, n)
            if n:
                image = bytearray(n * size)
                image[kind_at::size] = u8_tag * n
                image[byte_at::size] = data
                ctypes.memmove(raw.data, (ctypes.c_char * len(image)).from_buffer(image),
                               len(image))
            ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
            ptr.contents.of.list = raw
            return None

        def convert_from_c(self: Any, c: Any) -> Any:
            if not self._is_bytes():
                return from_c(self, c)
            assert c.kind == list_kind
            try:
                n = c.of.record.size
                if n == 0:
                    return b""
                return ctypes.string_at(c.of.tuple.data, n * size)[byte_at::size]
            finally:
                ffi.wasmtime_component_valtuple_delete(ctypes.byref(c.of.tuple))

        _originals = (to_c, from_c)
        setattr(_types.ListType, "convert_to_c", convert_to_c)
        setattr(_types.ListType, "convert_from_c", convert_from_c)
        _installed = True
