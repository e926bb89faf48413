"""The CPU gate of many accounts (cpu_gate.py): at most `slots` threads work on pages at once,
handed slots in the order they asked; a thread holding a slot takes no second one."""

from __future__ import annotations

import threading

import pytest

from sqquid_etl.cpu_gate import UNGATED, CpuGate


def _wait_for(predicate, what: str) -> None:
    event = threading.Event()
    for _ in range(2000):
        if predicate():
            return
        event.wait(0.005)
    raise AssertionError(f"never: {what}")


def test_at_most_slots_threads_inside_and_the_others_wait():
    gate = CpuGate(2)
    inside, most, lock = [0], [0], threading.Lock()
    go = threading.Event()

    def work():
        with gate.held():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            go.wait(5)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: gate.waits == 4, "four threads waiting for a slot")
    assert inside[0] == 2
    go.set()
    for thread in threads:
        thread.join(5)
    assert most[0] == 2
    assert gate._free == 2 and not gate._waiting  # every slot given back


def test_slots_are_handed_in_the_order_asked():
    gate = CpuGate(1)
    order: list[int] = []
    release = threading.Event()

    def first():
        with gate.held():
            release.wait(5)

    def later(i: int):
        with gate.held():
            order.append(i)

    holder = threading.Thread(target=first)
    holder.start()
    _wait_for(lambda: gate._free == 0, "the slot taken")
    waiters = []
    for i in range(5):
        waiters.append(threading.Thread(target=later, args=(i,)))
        waiters[-1].start()
        _wait_for(lambda: len(gate._waiting) == i + 1, f"waiter {i} queued")
    release.set()
    for thread in [holder, *waiters]:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_thread_holding_a_slot_does_not_take_another():
    gate = CpuGate(1)
    with gate.held():
        with gate.held():  # would wait for itself forever
            assert gate._free == 0
        assert gate._free == 0
    assert gate._free == 1


def test_a_slot_is_given_back_when_the_work_raises():
    gate = CpuGate(1)
    with pytest.raises(ValueError):
        with gate.held():
            raise ValueError("bad page")
    assert gate._free == 1
    with gate.held():
        assert gate._free == 0


def test_ungated_and_default_slots():
    with UNGATED.held():
        with UNGATED.held():
            pass
    assert CpuGate().slots >= 1
    assert CpuGate(0).slots == 1


class _Recording(CpuGate):
    """A gate that notes which steps ran holding its slot (by the function on the stack)."""

    def __init__(self):
        super().__init__(2)
        self.entered = 0

    def held(self, first: bool = False):
        self.entered += 1
        return super().held(first)


def test_an_extract_decodes_converts_and_stages_every_page_holding_a_slot(make_sandbox, tmp_path, monkeypatch):
    """Each page: decoded (fetch.page_reader), converted (read.read_tables), staged (engine), each
    holding a slot of the client's gate; the extract is whole."""
    from sqquid_etl import decode, read
    from sqquid_etl.destinations import staging
    from sqquid_etl.pipeline import extract
    from tests.support import make_client

    sandbox = make_sandbox(seed=3, orders=600, products=100)
    gate = _Recording()
    outside: list[str] = []

    def watched(owner, name):
        real = getattr(owner, name)

        def call(*args, **kwargs):
            if not getattr(gate._inside, "held", False):
                outside.append(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, call)

    watched(decode.PageDecoder, "decode")
    watched(read, "page_tables")
    watched(staging.ParquetStage, "write")
    client = make_client(sandbox, cpu_gate=gate)
    done = extract(["orders"], client=client, duckdb=str(tmp_path / "w.duckdb"), reconcile=False)
    assert done.ok
    pages = done.streams[0].pages
    assert pages >= 3 and done.streams[0].rows["orders"] == 600
    assert not outside, f"page work done without a slot: {outside}"
    assert gate.entered >= 3 * pages
    assert gate._free == 2


def test_the_pages_consumers_are_served_before_the_decoders():
    """Conversion and staging (`held(first=True)`, the account's thread) get a slot before the
    decoding of pages just come, each kind in the order asked."""
    gate = CpuGate(1)
    order: list[str] = []
    release = threading.Event()

    def holder():
        with gate.held():
            release.wait(5)

    def asks(name: str, first: bool):
        with gate.held(first=first):
            order.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    _wait_for(lambda: gate._free == 0, "the slot taken")
    for i, (name, first) in enumerate([("decode 1", False), ("convert 1", True), ("decode 2", False), ("stage 1", True)]):
        threads.append(threading.Thread(target=asks, args=(name, first)))
        threads[-1].start()
        _wait_for(lambda: len(gate._waiting) + len(gate._first) == i + 1, f"{name} queued")
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["convert 1", "stage 1", "decode 1", "decode 2"]
