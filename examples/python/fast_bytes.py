"""Bulk ``list<u8>`` conversion for wasmtime-py.

wasmtime-py 50 converts a ``list<u8>`` between Python ``bytes`` and the C API's value
list one element at a time, through a Python method call per byte: about 1 MiB/s,
which dominates everything the upstream stream moves. The C API's list is an array of
fixed-size tagged values, so a byte list is an array whose every element has the same
tag and one byte of payload: this module builds and reads that array with two strided
slice copies (C speed) instead. ``install()`` swaps the conversion in for byte lists
only, and only when the value layout is the one it was written for; anything else keeps
wasmtime-py's own code.
"""

import ctypes

from wasmtime import _ffi as ffi
from wasmtime.component import _types

_VAL = ffi.wasmtime_component_val_t
_SIZE = ctypes.sizeof(_VAL)
_KIND = _VAL.kind.offset
_BYTE = _VAL.of.offset + ffi.wasmtime_component_valunion_t.u8.offset
_U8 = ffi.WASMTIME_COMPONENT_U8.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value

_installed = False


def _layout_is_known():
    """Whether a value is a one-byte tag then a union holding the byte at its start."""
    return (_VAL.kind.size == 1 and ffi.wasmtime_component_valunion_t.u8.offset == 0
            and _BYTE < _SIZE)


def install():
    """Replaces byte-list conversion; returns whether it did (once is enough)."""
    global _installed
    if _installed or not _layout_is_known():
        return _installed
    to_c, from_c = _types.ListType.convert_to_c, _types.ListType.convert_from_c

    def convert_to_c(self, store, val, ptr):
        if not (self._is_bytes() and isinstance(val, (bytes, bytearray))):
            return to_c(self, store, val, ptr)
        n = len(val)
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, n)
        if n:
            image = bytearray(n * _SIZE)
            image[_KIND::_SIZE] = bytes([_U8]) * n
            image[_BYTE::_SIZE] = val
            ctypes.memmove(raw.data, bytes(image), len(image))
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
        ptr.contents.of.list = raw

    def convert_from_c(self, c):
        if not self._is_bytes():
            return from_c(self, c)
        assert c.kind == _LIST
        try:
            n = c.of.record.size
            if n == 0:
                return b""
            return ctypes.string_at(c.of.tuple.data, n * _SIZE)[_BYTE::_SIZE]
        finally:
            ffi.wasmtime_component_valtuple_delete(ctypes.byref(c.of.tuple))

    _types.ListType.convert_to_c = convert_to_c
    _types.ListType.convert_from_c = convert_from_c
    _installed = True
    return True
