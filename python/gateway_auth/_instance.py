"""One instance of the component in a wasmtime store of its own, and the runtime
(engine and compiled component) instances share.

Everything wasmtime-py is confined to this module and ``_wit``/``_bytes``/``_transport``.
An instance has: a memory limit (``Store.set_limits``), a call deadline (epoch
interruption: a ticker thread advances the engine's epoch every 10 ms and each call
sets its deadline in ticks), the ``transport`` import under the egress policy and the
``store`` import over a :class:`~gateway_auth.stores.Store`. A call that traps (its
deadline included) raises :class:`Trapped`; the instance is not entered again.
"""

from __future__ import annotations

import importlib.resources
import os
import threading
import time
import weakref
from typing import Any, Dict, Optional, Tuple, Union

from wasmtime.component import Record, Variant

from . import _bytes, _reflection
from ._transport import CONNECTION, Resolver, Transport
from ._wit import record
from .egress import Egress
from .errors import HostError
from .stores import Store

EPOCH_TICK = 0.010
"""Seconds between epoch increments: the granularity of call deadlines."""

PACKAGE = "gateway:auth"
VERSION = "0.1.0"


def interface(name: str) -> str:
    """The component-model name of an interface of the gateway:auth package."""
    return f"{PACKAGE}/{name}@{VERSION}"


def bundled_component() -> bytes:
    """The component shipped inside the package."""
    try:
        return (importlib.resources.files("gateway_auth") / "gateway_auth.wasm").read_bytes()
    except OSError as e:
        raise HostError(f"the bundled component is missing from the package: {e}") from None


class Runtime:
    """The engine and the compiled component; one per process (per component) is
    enough, shared by every instance. Made on first use, never at import."""

    _shared: Dict[str, "Runtime"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, wasm: bytes) -> None:
        _bytes.install()  # checks the wasmtime version first
        _reflection.install()
        import wasmtime
        from wasmtime.component import Component

        config = wasmtime.Config()
        config.epoch_interruption = True
        try:
            config.cache = True  # compiled code cached on disk: later starts are fast
        except wasmtime.WasmtimeError:
            pass
        try:
            self.engine = wasmtime.Engine(config)
            self.component = Component(self.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise HostError(f"loading the component: {e}") from None
        self._start_ticker()

    @classmethod
    def get(cls, component: Union[None, str, "os.PathLike[str]", bytes] = None) -> "Runtime":
        """The process's runtime for ``component`` (a path or bytes; default: the
        bundled one), compiled on first use."""
        if isinstance(component, bytes):
            key = f"bytes:{hash(component)}:{len(component)}"
        elif component is None:
            key = "bundled"
        else:
            key = f"file:{os.path.abspath(os.fspath(component))}"
        with cls._shared_lock:
            runtime = cls._shared.get(key)
            if runtime is None:
                if component is None:
                    wasm = bundled_component()
                elif isinstance(component, bytes):
                    wasm = component
                else:
                    try:
                        with open(component, "rb") as f:
                            wasm = f.read()
                    except OSError as e:
                        raise HostError(f"{os.fspath(component)}: {e}") from None
                runtime = cls(wasm)
                cls._shared[key] = runtime
            return runtime

    def _start_ticker(self) -> None:
        engine_ref = weakref.ref(self.engine)

        def tick() -> None:
            while True:
                time.sleep(EPOCH_TICK)
                engine = engine_ref()
                if engine is None:
                    return
                engine.increment_epoch()
                del engine

        threading.Thread(target=tick, name="gateway-auth-epoch", daemon=True).start()


def ticks(timeout: float) -> int:
    """The epoch ticks of ``timeout`` seconds: at least one."""
    return max(1, int(timeout / EPOCH_TICK))


def largest_input(value: Any) -> int:
    """The length of the longest string or byte string in ``value`` (a component value:
    records, variants and lists are looked into)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return max((largest_input(v) for v in value), default=0)
    if isinstance(value, Record):
        return max((largest_input(v) for v in vars(value).values()), default=0)
    if isinstance(value, Variant):
        return largest_input(value.payload)
    return 0


class Trapped(Exception):
    """A call trapped; ``interrupted`` when it was its deadline."""

    def __init__(self, message: str, interrupted: bool) -> None:
        super().__init__(message)
        self.interrupted = interrupted


class StoreImport:
    """The ``store`` import over a user :class:`Store`: a failure (any exception) is
    returned as the WIT error string, never raised (a raise would trap)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _failure(e: BaseException) -> str:
        text = str(e) or type(e).__name__
        return text if text.startswith(("redis", "token store")) else f"token store: {text}"

    def get(self, _ctx: Any, key: str) -> Any:
        """``get``: a ``stored`` record, or the error text."""
        try:
            value = self.store.get(key)
        except Exception as e:
            return self._failure(e)
        return record(value=None if value is None else bytes(value))

    def compare_and_swap(self, _ctx: Any, key: str, expected: Optional[bytes],
                         value: Optional[bytes]) -> Any:
        """``compare-and-swap``: whether it wrote, or the error text."""
        try:
            return bool(self.store.compare_and_swap(key, expected, value))
        except Exception as e:
            return self._failure(e)


class Instance:
    """One instance: a wasmtime store, the instantiated component, its imports."""

    def __init__(self, runtime: Runtime, egress: Egress, store: Store, memory_limit: int,
                 log_to_stderr: bool = True, resolver: Optional[Resolver] = None) -> None:
        import wasmtime
        from wasmtime.component import Linker, ResourceType

        self.runtime = runtime
        self.transport = Transport(egress, resolver)
        self.kv = StoreImport(store)
        linker = Linker(runtime.engine)
        linker.add_wasip2()
        with linker.root() as root:
            with root.add_instance(interface("transport")) as t:
                t.add_resource("connection", ResourceType.host(CONNECTION), self.transport.drop)
                t.add_func("connect", self.transport.connect)
                t.add_func("[method]connection.write", self.transport.write)
                t.add_func("[method]connection.read", self.transport.read)
            with root.add_instance(interface("store")) as s:
                s.add_func("get", self.kv.get)
                s.add_func("compare-and-swap", self.kv.compare_and_swap)
        self.store = wasmtime.Store(runtime.engine)
        self.store.set_limits(memory_size=memory_limit, instances=16)
        wasi = wasmtime.WasiConfig()
        if log_to_stderr:
            wasi.inherit_stderr()  # the plugin's log lines, which never carry secrets
        self.store.set_wasi(wasi)
        self.store.set_epoch_deadline(1 << 40)
        try:
            self.instance = linker.instantiate(self.store, runtime.component)
        except wasmtime.WasmtimeError as e:
            raise HostError(f"instantiating the component: {e}") from None
        self._funcs: Dict[Tuple[str, str], Any] = {}
        self.broken = False

    def func(self, iface: str, name: str) -> Any:
        """Export ``name`` of interface ``iface``."""
        key = (iface, name)
        found = self._funcs.get(key)
        if found is None:
            parent = self.instance.get_export_index(self.store, interface(iface))
            index = None if parent is None else self.instance.get_export_index(
                self.store, name, parent)
            found = None if index is None else self.instance.get_func(self.store, index)
            if found is None:
                raise HostError(f"the component has no export {interface(iface)}#{name}")
            self._funcs[key] = found
        return found

    def call(self, timeout: float, iface: str, name: str, *args: Any) -> Any:
        """Calls an export under a deadline of ``timeout`` seconds; its lifted result.
        Raises :class:`Trapped` when it traps (the instance is broken then)."""
        if self.broken:
            raise Trapped("the instance trapped before", interrupted=False)
        func = self.func(iface, name)
        self.store.set_epoch_deadline(ticks(timeout))
        started = time.monotonic()
        try:
            result = func(self.store, *args)
            func.post_return(self.store)
        except Exception as e:
            self.broken = True
            self.transport.close_all()
            interrupted = "interrupt" in str(e) or time.monotonic() - started >= timeout
            raise Trapped(f"{type(e).__name__}: {e}", interrupted) from None
        return result

    def drop_resource(self, resource: Any) -> None:
        """Frees a resource the instance handed out (a ``tls-session``)."""
        if not self.broken:
            try:
                resource.drop(self.store)
            except Exception:
                pass

    def close(self) -> None:
        """Closes the instance's sockets; the instance is not used again."""
        self.broken = True
        self.transport.close_all()
