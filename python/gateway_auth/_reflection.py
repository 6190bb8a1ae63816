"""Cached type reflection for wasmtime-py 50.0.1.

wasmtime-py 50's ``component.Func.__call__`` asks the C API for the function's type on
every call, and converting each value asks again for every record's fields, every
variant's cases and whether a variant's cases can be told apart by Python type: an
empty ``TlsSession.advance`` spends most of its ~130 µs rebuilding type objects from C
pointers. A component's types never change, so this module memoises them per object:
a function's type per ``Func``, and each type object's fields, cases, element,
payloads, Python classes and taggedness on the object itself.

It reaches into wasmtime-py's private modules, so, like ``_bytes``, it is pinned to
:data:`~gateway_auth._bytes.WRITTEN_FOR` (``install`` is called after the version
check there) and patches nothing at import.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Set, Tuple

_installed = False
_lock = threading.Lock()


def _memo_property(cls: type, name: str) -> None:
    """Replaces property ``name`` of ``cls`` with one computed once per object."""
    original = cls.__dict__[name]
    getter: Callable[[Any], Any] = original.fget
    slot = f"_gateway_auth_{name}"

    def cached(self: Any) -> Any:
        try:
            return self.__dict__[slot]
        except KeyError:
            value = getter(self)
            self.__dict__[slot] = value
            return value

    setattr(cls, name, property(cached, doc=original.__doc__))


def _memo_method(cls: type, name: str) -> None:
    """Replaces method ``name(self)`` of ``cls`` with one computed once per object."""
    original: Callable[[Any], Any] = cls.__dict__[name]
    slot = f"_gateway_auth_{name}"

    def cached(self: Any) -> Any:
        try:
            return self.__dict__[slot]
        except KeyError:
            value = original(self)
            self.__dict__[slot] = value
            return value

    setattr(cls, name, cached)


def _memo_add_classes(cls: type) -> None:
    """Makes ``cls.add_classes(s)`` add a set computed once per object."""
    original: Callable[[Any, Set[type]], None] = cls.__dict__["add_classes"]

    def cached(self: Any, s: Set[type]) -> None:
        try:
            classes = self.__dict__["_gateway_auth_classes"]
        except KeyError:
            found: Set[type] = set()
            original(self, found)
            classes = frozenset(found)
            self.__dict__["_gateway_auth_classes"] = classes
        s |= classes

    setattr(cls, "add_classes", cached)


def install() -> None:
    """Installs the caches (once per process). Call only after the wasmtime version
    was checked (``_bytes.install``)."""
    global _installed
    with _lock:
        if _installed:
            return
        from wasmtime.component import _func, _types

        _memo_property(_types.FuncType, "params")
        _memo_property(_types.FuncType, "result")
        _memo_property(_types.ListType, "element")
        _memo_property(_types.RecordType, "fields")
        _memo_property(_types.TupleType, "elements")
        _memo_property(_types.VariantType, "cases")
        _memo_property(_types.EnumType, "names")
        _memo_property(_types.OptionType, "payload")
        _memo_property(_types.ResultType, "ok")
        _memo_property(_types.ResultType, "err")
        _memo_property(_types.FlagsType, "names")
        _memo_method(_types.ListType, "_is_bytes")
        for cls in (_types.VariantType, _types.OptionType, _types.ResultType):
            _memo_method(cls, "_cases")
        _memo_method(_types.VariantLikeType, "_tagged")
        for cls in vars(_types).values():
            if isinstance(cls, type) and "add_classes" in cls.__dict__ \
                    and issubclass(cls, _types.ValType) and cls is not _types.ValType:
                _memo_add_classes(cls)

        # A function's type, once per Func (the C API hands out a new copy each call).
        original_type: Callable[[Any, Any], Any] = _func.Func.type

        def func_type(self: Any, store: Any) -> Any:
            try:
                return self.__dict__["_gateway_auth_type"]
            except KeyError:
                ty = original_type(self, store)
                self.__dict__["_gateway_auth_type"] = ty
                return ty

        setattr(_func.Func, "type", func_type)
        _cache_host_function_types()
        _installed = True


def _cache_host_function_types() -> None:
    """Host functions (the imports) get their parameter and result types once per
    linker slot instead of on every call. The types the C API hands out are owned
    copies, so they outlive the call they came with; a slot's entry goes when the
    function is finalized (its slot may be reused for another function)."""
    import ctypes

    from wasmtime import _ffi as ffi
    from wasmtime.component import _linker, _types
    from wasmtime.component._enter import catch_exceptions

    by_slot: Dict[int, Tuple[Any, Any]] = {}

    @ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
    def func_impl(idx: Any, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any,
                  nresults: int) -> Any:
        def run(store: Any) -> None:
            slot = idx or 0
            types = by_slot.get(slot)
            if types is None:
                fty = _types.FuncType._from_ptr(ty_raw, owner=store)
                types = (fty.params, fty.result)
                by_slot[slot] = types
            param_tys, result_ty = types
            assert len(param_tys) == nargs and nresults == (0 if result_ty is None else 1)
            func = _linker.FUNCTIONS.get(slot)
            pyargs = [ty.convert_from_c(args[i]) for i, (_, ty) in enumerate(param_tys)]
            result = func(store, *pyargs)
            if result_ty is None:
                assert result is None
            else:
                result_ty.convert_to_c(store, result, results)
        return catch_exceptions(context, run)

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
    def func_finalize(idx: Any) -> None:
        by_slot.pop(idx or 0, None)
        if _linker.FUNCTIONS:
            _linker.FUNCTIONS.deallocate(idx or 0)

    # add_func passes the module's callbacks by name when a function is added.
    setattr(_linker, "func_impl", func_impl)
    setattr(_linker, "func_finalize", func_finalize)
