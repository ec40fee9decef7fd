"""Sessions that left are shut down when their reconnect window ends (ui/sessions.py)."""
from __future__ import annotations

import ctypes.util
from dataclasses import dataclass

import pytest

from ui.sessions import ExpiringSessionStorage, limit_malloc_arenas, release_free_heap


@dataclass
class FakeSession:
    id: str
    shutdowns: int = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


@dataclass
class FakeInfo:
    session: FakeSession
    client: object = None
    script_run_count: int = 0


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def stored(storage: ExpiringSessionStorage, *names: str) -> list[FakeInfo]:
    infos = [FakeInfo(FakeSession(name)) for name in names]
    for info in infos:
        storage.save(info)
    return infos


def test_a_session_is_kept_for_its_window_then_shut_down_once():
    clock = Clock()
    storage = ExpiringSessionStorage(ttl_seconds=5, clock=clock)
    first, second = stored(storage, "a", "b")
    clock.now += 4.9
    assert storage.get("a") is first and [i.session.id for i in storage.list()] == ["a", "b"]
    assert first.session.shutdowns == 0
    clock.now += 0.1  # exactly at the deadline: gone
    assert storage.reap() == 2
    assert storage.get("a") is None and storage.list() == []
    assert (first.session.shutdowns, second.session.shutdowns) == (1, 1)
    assert storage.reap() == 0 and first.session.shutdowns == 1  # never twice


def test_a_reconnect_takes_the_session_back_without_shutting_it_down():
    clock = Clock()
    storage = ExpiringSessionStorage(ttl_seconds=5, clock=clock)
    (info,) = stored(storage, "a")
    storage.delete("a")  # what Streamlit does when the tab comes back
    clock.now += 60
    assert storage.reap() == 0 and info.session.shutdowns == 0
    with pytest.raises(KeyError):
        storage.delete("a")


def test_saving_again_restarts_the_window():
    clock = Clock()
    storage = ExpiringSessionStorage(ttl_seconds=5, clock=clock)
    (info,) = stored(storage, "a")
    clock.now += 4
    storage.save(info)
    clock.now += 4  # 8 s after the first save, 4 s after the second
    assert storage.get("a") is info and info.session.shutdowns == 0


def test_over_the_limit_the_oldest_is_shut_down():
    storage = ExpiringSessionStorage(ttl_seconds=60, max_stored=2, clock=Clock())
    old, middle, new = stored(storage, "old", "middle", "new")
    assert [i.session.id for i in storage.list()] == ["middle", "new"]
    assert (old.session.shutdowns, middle.session.shutdowns, new.session.shutdowns) == (1, 0, 0)


def test_one_failing_shutdown_does_not_keep_the_others():
    class Broken(FakeSession):
        def shutdown(self) -> None:
            raise RuntimeError("boom")

    clock = Clock()
    storage = ExpiringSessionStorage(ttl_seconds=1, clock=clock)
    storage.save(FakeInfo(Broken("broken")))
    (fine,) = stored(storage, "fine")
    clock.now += 2
    assert storage.reap() == 2 and fine.session.shutdowns == 1 and storage.list() == []


@pytest.mark.skipif(not ctypes.util.find_library("c"), reason="glibc only")
def test_allocator_calls_are_made_where_glibc_is(monkeypatch):
    assert release_free_heap() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # an operator's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas(4) is True
