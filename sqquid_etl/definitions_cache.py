"""The packaged stream definitions, parsed once and kept beside them until a file changes.

Every run reads every packaged definition; parsing them means loading PyYAML and reading
the YAML (~0.01 s of CPU, a fortieth of a scheduled no-op run: bench/startup.py). So, as
Python keeps the bytecode of a module in `__pycache__`, the definitions as parsed are kept in
`streams/__pycache__/definitions.pickle`, with what they were made from: the name, size and
modification time of each `*.yaml` file and of the modules that parse them
(`definitions.py`, whose classes the file holds, and `state.py`'s durations). A run whose files are all as they were
unpickles them; any difference (a file edited, added or removed, another version of the
code) parses the YAML again and replaces the file. A directory that cannot be written, or a
file that cannot be read back, only costs the parse; where Python keeps no bytecode (`-B`,
`PYTHONDONTWRITEBYTECODE`) nothing is written. Definitions given as a directory of
the user's (`load_definitions(directory)`) are always parsed: nothing is written there.
The file is as trusted as the package's bytecode beside it (whoever can write one can write
the other)."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

CACHE = Path("__pycache__") / "definitions.pickle"


def packaged(parse: Callable[[list[tuple[str, str]]], T]) -> T:
    """The packaged definitions: those kept, when their files are as they were; else
    `parse([(file name, text), ...])` of the files, kept for the next run."""
    files = packaged_files()
    if files is None:
        from importlib import resources

        return parse([(p.name, p.read_text(encoding="utf-8"))
                      for p in resources.files("sqquid_etl.streams").iterdir() if p.name.endswith(".yaml")])
    definitions = cached(files)
    if definitions is None:
        definitions = parse([(p.name, p.read_text(encoding="utf-8")) for p in files])
        if not sys.dont_write_bytecode:  # told to keep no bytecode (PYTHONDONTWRITEBYTECODE, -B): nor these
            keep(files, definitions)
    return definitions


def packaged_files() -> list[Path] | None:
    """The packaged `*.yaml` files when they are files in a directory (None otherwise, e.g.
    a zipped install: then they are read through importlib.resources, not kept)."""
    spec = importlib.util.find_spec("sqquid_etl.streams")
    locations = list(spec.submodule_search_locations or ()) if spec else []
    if len(locations) != 1 or not Path(locations[0]).is_dir():
        return None
    return sorted(p for p in Path(locations[0]).iterdir() if p.name.endswith(".yaml"))


PARSERS = ("definitions.py", "state.py")  # the modules whose code makes the definitions (durations: state.py)


def _made_from(files: list[Path]) -> tuple:
    parsers = [Path(__file__).with_name(name) for name in PARSERS]
    return tuple((p.name, s.st_size, s.st_mtime_ns) for p in (*parsers, *files) for s in [p.stat()])


def cached(files: list[Path]) -> Any | None:
    """The definitions kept for these files, when every file is as it was (None otherwise)."""
    try:
        with open(files[0].parent / CACHE, "rb") as f:
            made_from, definitions = pickle.load(f)
        return definitions if made_from == _made_from(files) else None
    except Exception:  # noqa: BLE001 - missing, unreadable, of another version: parsed again
        return None


def keep(files: list[Path], definitions: Any) -> None:
    """Keep the definitions parsed from these files (written whole, then renamed into place)."""
    import tempfile

    target = files[0].parent / CACHE
    try:
        target.parent.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".definitions-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump((_made_from(files), definitions), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass  # a directory we may not write: the next run parses them again
