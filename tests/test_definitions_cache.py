"""The packaged stream definitions kept parsed between runs (definitions_cache.py, issue #11)."""

from __future__ import annotations

import os
import subprocess
import sys

from sqquid_etl import definitions_cache
from sqquid_etl.definitions import load_definitions

ORDERS = """name: {name}
endpoint: /v1/orders
envelope: Orders
primary_key: [id]
schema:
  id: integer
"""


def _files(tmp_path, *names):
    for name in names:
        (tmp_path / f"{name}.yaml").write_text(ORDERS.format(name=name), encoding="utf-8")
    return sorted(tmp_path.glob("*.yaml"))


def test_kept_definitions_are_used_only_while_every_file_is_as_it_was(tmp_path):
    files = _files(tmp_path, "a", "b")
    parsed = []

    def parse(texts):
        parsed.append([name for name, _ in texts])
        return {name: text for name, text in texts}

    assert definitions_cache.cached(files) is None  # nothing kept yet
    definitions_cache.keep(files, parse([(p.name, p.read_text()) for p in files]))
    assert (tmp_path / "__pycache__" / "definitions.pickle").is_file()
    assert definitions_cache.cached(files) == {"a.yaml": ORDERS.format(name="a"), "b.yaml": ORDERS.format(name="b")}

    files[1].write_text(ORDERS.format(name="b") + "  sku: string\n", encoding="utf-8")  # edited: another size
    assert definitions_cache.cached(files) is None
    definitions_cache.keep(files, {"edited": True})
    assert definitions_cache.cached(files) == {"edited": True}
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: another time
    assert definitions_cache.cached(files) is None
    assert definitions_cache.cached(_files(tmp_path, "c")) is None  # a file added
    assert definitions_cache.cached(files[:1]) is None  # a file removed


def test_a_file_that_cannot_be_read_back_or_written_costs_only_the_parse(tmp_path):
    files = _files(tmp_path, "a")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "definitions.pickle").write_bytes(b"not a pickle")
    assert definitions_cache.cached(files) is None
    (tmp_path / "__pycache__" / "definitions.pickle").unlink()
    (tmp_path / "__pycache__").rmdir()
    (tmp_path / "__pycache__").write_text("a file where the directory would be")
    definitions_cache.keep(files, {"a": 1})  # cannot be written: no error
    assert definitions_cache.cached(files) is None
    assert not list(tmp_path.glob(".definitions-*"))


def test_nothing_is_kept_where_python_is_told_to_write_no_bytecode(tmp_path, monkeypatch):
    files = _files(tmp_path, "a")
    monkeypatch.setattr(definitions_cache, "packaged_files", lambda: files)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert definitions_cache.packaged(lambda texts: {"parsed": len(texts)}) == {"parsed": 1}
    assert not (tmp_path / "__pycache__").exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    definitions_cache.packaged(lambda texts: {"parsed": len(texts)})
    assert definitions_cache.cached(files) == {"parsed": 1}


def test_packaged_definitions_load_without_yaml_once_kept(monkeypatch):
    """A second process finds the packaged definitions kept: it loads them without PyYAML, and they
    are the definitions the YAML files give."""
    code = ("import sys; from sqquid_etl.definitions import load_definitions; d = load_definitions(); "
            "print(sorted(d), 'yaml' in sys.modules)")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # (kept even where the tests run with -B)
    load_definitions()  # kept (or found kept)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().endswith("False")
    files = definitions_cache.packaged_files()
    assert files and [p.suffix for p in files] == [".yaml"] * len(files)
    from sqquid_etl.definitions import _parse_files

    assert load_definitions() == _parse_files([(p.name, p.read_text(encoding="utf-8")) for p in files])
    assert list(load_definitions()) == list(_parse_files([(p.name, p.read_text(encoding="utf-8")) for p in files]))
