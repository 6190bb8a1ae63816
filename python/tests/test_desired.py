"""The record of what instances should hold (cache settings, open sessions, forgets
owed), as the Rust host's ``desired`` module: it stays bounded however many sessions
are closed, and every instance forgets a session closed elsewhere before reopening it."""

from __future__ import annotations

from gateway_auth._desired import Desired, Following, Plan
from gateway_auth.types import Client, ClientCredentials, Settings


def entries(desired: Desired) -> int:
    """Entries the record keeps: open sessions, and per follower what it holds and owes."""
    with desired.lock:
        return len(desired._sessions) + sum(
            len(a.sessions) + len(a.forget) for a in desired._followers.values())


def sync(follower: Following) -> Plan:
    """What a plugin's sync does when every call succeeds."""
    plan = follower.plan()
    for key in plan.forget:
        follower.forgotten(key)
    if plan.cache is not None:
        follower.cache_applied(plan.cache[0])
    for key, revision, _, _ in plan.open:
        follower.opened(key, revision)
    return plan


def open_(follower: Following, key: str) -> None:
    follower.open(key, Client("gw"), ClientCredentials())


def test_closing_ten_thousand_sessions_after_every_instance_synced_keeps_the_record_bounded() -> None:
    desired = Desired()
    a, b = desired.follow(), desired.follow()
    for i in range(10_000):
        key = f"user-{i}"
        open_(a, key)
        assert len(sync(b).open) == 1
        a.close(key)
        assert sync(b).forget == [key]
    assert entries(desired) == 0


def test_an_instance_holding_none_of_the_closed_sessions_keeps_nothing_alive() -> None:
    desired = Desired()
    a = desired.follow()
    desired.follow()  # one that never syncs (the upstream streams' instance, say)
    for i in range(10_000):
        open_(a, f"user-{i}")
        a.close(f"user-{i}")
    assert entries(desired) == 0


def test_a_lagging_instance_still_forgets_a_session_closed_while_it_lagged() -> None:
    desired = Desired()
    a, lagging = desired.follow(), desired.follow()
    open_(a, "gw")
    sync(lagging)
    a.close("gw")
    for i in range(1000):
        open_(a, f"user-{i}")
        a.close(f"user-{i}")
    assert entries(desired) == 1
    assert lagging.must_forget("gw")
    assert sync(lagging).forget == ["gw"]
    assert entries(desired) == 0


def test_a_session_closed_and_opened_again_is_forgotten_before_it_is_reopened() -> None:
    desired = Desired()
    a, b = desired.follow(), desired.follow()
    open_(a, "gw")
    sync(b)
    a.close("gw")
    open_(a, "gw")
    plan = sync(b)
    assert plan.forget == ["gw"] and len(plan.open) == 1
    again = sync(b)
    assert again.forget == [] and again.open == []


def test_a_session_closed_while_an_instance_was_opening_it_is_forgotten_there() -> None:
    desired = Desired()
    a, b = desired.follow(), desired.follow()
    open_(a, "gw")
    plan = b.plan()
    a.close("gw")  # lands between b's plan and the end of its open
    for key, revision, _, _ in plan.open:
        b.opened(key, revision)
    assert sync(b).forget == ["gw"]


def test_a_departed_instance_leaves_nothing_behind() -> None:
    desired = Desired()
    a, b = desired.follow(), desired.follow()
    open_(a, "gw")
    sync(b)
    a.close("gw")
    assert entries(desired) == 1
    b.leave()
    assert entries(desired) == 0


def test_a_replaced_instance_reopens_and_is_still_told_of_later_closes() -> None:
    desired = Desired()
    a, b = desired.follow(), desired.follow()
    open_(a, "gw")
    sync(b)
    b.restart()
    assert len(sync(b).open) == 1
    a.close("gw")
    assert sync(b).forget == ["gw"]


def test_declared_cache_settings_reach_every_instance_once() -> None:
    desired = Desired()
    a, b = desired.follow(), desired.follow()
    desired.declare_cache(Settings(capacity=3))
    assert sync(a).cache == sync(b).cache
    assert sync(a).cache is None and sync(b).cache is None
    a.set_cache(Settings(capacity=4))
    assert sync(a).cache is None, "applied by the instance that set it"
    plan = sync(b).cache
    assert plan is not None and plan[1] == Settings(capacity=4)
