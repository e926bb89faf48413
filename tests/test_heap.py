"""The C heap of a run of many accounts (`heap.py`): its free pages given back every few seconds
while the run lasts, and no more once it ended."""

from __future__ import annotations

import threading

from sqquid_etl import accounts_cli, heap


def test_the_trimmer_gives_the_free_pages_back_while_its_block_lasts():
    calls: list[int] = []
    third = threading.Event()

    def trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) >= 3:
            third.set()
        return 1

    with heap.Trimmer(seconds=0.001, trim=trim) as trimmer:
        assert third.wait(timeout=30)
    after = len(calls)
    assert calls[:3] == [0, 0, 0] and trimmer.trims == after
    assert not trimmer._thread.is_alive() and len(calls) == after  # stopped with its block


def test_without_glibc_the_trimmer_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "malloc_trim", lambda: None)
    with heap.Trimmer() as trimmer:
        assert not trimmer._thread.is_alive()
    assert trimmer.trims == 0


def test_a_run_of_many_accounts_from_the_cli_trims_the_heap_while_it_runs(monkeypatch):
    seen: dict = {}

    class Recording(heap.Trimmer):
        def __enter__(self):
            seen["entered"] = True
            return super().__enter__()

        def __exit__(self, *exc):
            seen["exited"] = True
            return super().__exit__(*exc)

    def run_accounts(*args, **kwargs):
        seen["inside"] = seen.get("entered", False) and not seen.get("exited", False)
        raise RuntimeError("stop here")

    monkeypatch.setattr(accounts_cli, "Trimmer", Recording)
    monkeypatch.setattr(accounts_cli, "run_accounts", run_accounts)
    monkeypatch.setattr(accounts_cli, "select_accounts", lambda *a: [])
    monkeypatch.setattr(accounts_cli, "accounts_from_settings", lambda s: {})
    monkeypatch.setattr(accounts_cli, "resolve_credentials", lambda a: {})
    ctx = type("Ctx", (), {"get_parameter_source": lambda self, name: None})()
    output = {"quiet": True, "log_format": "text"}
    try:
        accounts_cli.extract_accounts(ctx, None, output, {}, None, True, streams=None, start_date=None, rate=None,
                                      burst=None, show_progress=False)
    except RuntimeError:
        pass
    assert seen == {"entered": True, "inside": True, "exited": True}
