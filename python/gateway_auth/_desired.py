"""What instances should hold beyond the store: the cache settings and the open
sessions, and per following instance what it has applied (the Rust host's
``host/src/desired.rs``).

One record serves a lone :class:`~gateway_auth.Plugin` (replayed into a replacement
instance after a trap) and every instance of a pool or an
:class:`~gateway_auth.AsyncPlugin` (each brought up to date when it is next used). A
close is kept only as a forget owed by each instance that holds the session, so the
record grows with the sessions held, never with the closes made over its life.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from .types import Client, SessionGrant, Settings

Opened = Tuple[int, Client, SessionGrant]


@dataclass
class _Applied:
    cache: int = 0
    sessions: Dict[str, int] = field(default_factory=dict)
    forget: Set[str] = field(default_factory=set)


@dataclass
class Plan:
    """What an instance still has to do: forget, set the cache, open sessions."""

    forget: List[str]
    cache: Optional[Tuple[int, Settings]]
    open: List[Tuple[str, int, Client, SessionGrant]]


class Desired:
    """The desired state, shared by the instances that follow it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._revision = 0
        self._cache: Optional[Tuple[int, Settings]] = None
        self._sessions: Dict[str, Opened] = {}
        self._followers: Dict[int, _Applied] = {}
        self._ids = itertools.count(1)

    def declare_cache(self, settings: Settings) -> None:
        """Records new cache settings that no instance has applied yet (each applies
        them when it is next brought up to date)."""
        with self.lock:
            self._revision += 1
            self._cache = (self._revision, settings)

    def follow(self) -> "Following":
        """Registers one more instance; it holds nothing yet."""
        with self.lock:
            fid = next(self._ids)
            self._followers[fid] = _Applied()
        return Following(self, fid)


class Following:
    """One instance's registration with a :class:`Desired` (every method locks)."""

    def __init__(self, desired: Desired, fid: int) -> None:
        self.desired = desired
        self.id = fid

    def _applied(self) -> _Applied:
        return self.desired._followers.setdefault(self.id, _Applied())

    def leave(self) -> None:
        """Deregisters, taking the forgets it was owed with it."""
        with self.desired.lock:
            self.desired._followers.pop(self.id, None)

    def set_cache(self, settings: Settings) -> None:
        """Records new cache settings, applied by this instance."""
        d = self.desired
        with d.lock:
            d._revision += 1
            d._cache = (d._revision, settings)
            self._applied().cache = d._revision

    def cache_applied(self, revision: int) -> None:
        """Notes that this instance applied the cache settings of ``revision``."""
        with self.desired.lock:
            self._applied().cache = revision

    def open(self, key: str, client: Client, grant: SessionGrant) -> None:
        """Records a session opened through this instance."""
        d = self.desired
        with d.lock:
            d._revision += 1
            d._sessions[key] = (d._revision, client, grant)
            applied = self._applied()
            applied.sessions[key] = d._revision
            applied.forget.discard(key)

    def opened(self, key: str, revision: int) -> None:
        """Notes that this instance opened ``key`` as of ``revision``; if it was closed
        or opened again meanwhile, what it read is to be forgotten."""
        d = self.desired
        with d.lock:
            current = d._sessions.get(key)
            applied = self._applied()
            if current is not None and current[0] == revision:
                applied.sessions[key] = revision
            else:
                applied.sessions.pop(key, None)
                applied.forget.add(key)

    def close(self, key: str) -> None:
        """Records a session closed through this instance: every other instance that
        holds it owes a forget."""
        d = self.desired
        with d.lock:
            d._revision += 1
            d._sessions.pop(key, None)
            for fid, applied in d._followers.items():
                held = applied.sessions.pop(key, None) is not None
                if fid == self.id:
                    applied.forget.discard(key)
                elif held:
                    applied.forget.add(key)

    def slowest_client(self) -> Optional[Client]:
        """The client with the longest deadline among the open sessions'."""
        with self.desired.lock:
            clients = [c for _, c, _ in self.desired._sessions.values()]
        return max(clients, key=lambda c: c.effective_timeout_ms, default=None)

    def must_forget(self, key: str) -> bool:
        """Whether this instance must forget ``key`` before using it again."""
        with self.desired.lock:
            applied = self.desired._followers.get(self.id)
            return applied is not None and key in applied.forget

    def unapplied(self, key: str) -> Optional[Opened]:
        """Session ``key`` as the record has it open, if this instance has not applied
        that open."""
        with self.desired.lock:
            found = self.desired._sessions.get(key)
            if found is None:
                return None
            applied = self.desired._followers.get(self.id)
            mine = None if applied is None else applied.sessions.get(key)
            return None if mine == found[0] else found

    def forgotten(self, key: str) -> None:
        """Notes that this instance forgot ``key``."""
        with self.desired.lock:
            applied = self._applied()
            applied.forget.discard(key)
            applied.sessions.pop(key, None)

    def to_forget(self) -> List[str]:
        """The sessions this instance must forget."""
        with self.desired.lock:
            applied = self.desired._followers.get(self.id)
            return sorted(applied.forget) if applied else []

    def restart(self) -> None:
        """This instance was replaced by a fresh one, which holds nothing."""
        with self.desired.lock:
            self.desired._followers[self.id] = _Applied()

    def plan(self) -> Plan:
        """What this instance still has to do."""
        d = self.desired
        with d.lock:
            applied = self._applied()
            cache = d._cache if d._cache is not None and d._cache[0] != applied.cache else None
            opens = [(key, rev, client, grant) for key, (rev, client, grant) in d._sessions.items()
                     if applied.sessions.get(key) != rev]
            return Plan(sorted(applied.forget), cache, opens)
