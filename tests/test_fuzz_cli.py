"""Fuzzing what a careless or hostile user can hand the tool: every command's options (through
click's test runner), config files, catalogs, state files (Parquet's JSON, DuckDB's table) and
reverse-load journals. Whatever is given: no error reaches the last resort (every one is a
clear `error:` where it happens), the exit code is a documented one, and nothing of the user's
changes. Each test runs a fixed number of generated cases (derandomized: the same every run);
the figures are in docs/reliability.md."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqquid_etl.cli as cli
from sqquid_etl import extract
from sqquid_etl.catalog import build_catalog
from sqquid_etl.errors import ConfigError, StateError
from sqquid_etl.reverse_journal import Journal
from sqquid_etl.state import StreamState
from tests.support import API_KEY, PASSWORD, USERNAME, make_client

DOCUMENTED = set(range(8))  # README: 0 ok, 1 other, 2 options, 3 login, 4 API, 5 schema, 6 input, 7 state
STREAMS = ["orders", "products", "inventory", "locations", "buffers", "shipments", "shipment_items"]
# the generated cases of each test (docs/reliability.md counts them)
CASES = {"options": 250, "config": 70, "catalog": 50, "parquet_state": 50, "duckdb_state": 40, "journal": 300,
         "state_entry": 200, "tap": 60}


def fuzz_settings(cases: int):
    return settings(max_examples=cases, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


# -- the world a case runs in ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small sandbox, and a template of a working directory: the user's own files beside a
    DuckDB extract and a Parquet extract the tool made."""
    from sqquid_etl.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig(seed=3, orders=20, products=8, rate=None))
    sandbox.start()
    template = tmp_path_factory.mktemp("template")
    with duckdb.connect(str(template / "mine.duckdb")) as conn:
        conn.execute("CREATE TABLE orders AS SELECT 1 AS id")
    (template / "notes").mkdir()
    (template / "notes" / "todo.txt").write_text("mine\n")
    (template / "plain.txt").write_text("mine too\n")
    (template / "data.csv").write_text("sku,qty_on_hand\n007,3\n")
    (template / "buffers.csv").write_text("sku,channel_id,quantity\n007,1,2\n")
    (template / "catalog.json").write_text(json.dumps(build_catalog()))
    (template / "job.toml").write_text('[extract]\nstreams = ["locations"]\nlookback = "1s"\n')
    for kind, name in (("duckdb", "s.duckdb"), ("parquet", "lake")):
        assert extract(["orders", "locations"], client=make_client(sandbox), **{kind: template / name}).ok
    (template / "lake" / "keep.txt").write_text("the user's, inside the extract's directory\n")
    yield sandbox, template
    sandbox.stop()


USERS = ["mine.duckdb", "notes/todo.txt", "plain.txt", "data.csv", "buffers.csv", "lake/keep.txt", "job.toml"]  # never to change
_counter = itertools.count()


def workspace(template: Path, root: Path) -> Path:
    here = root / f"case-{next(_counter)}"
    shutil.copytree(template, here, symlinks=True)
    return here


def fingerprints(here: Path, names=USERS) -> dict[str, str | None]:
    return {n: hashlib.sha256((here / n).read_bytes()).hexdigest() if (here / n).is_file() else None for n in names}


class LastResort:
    """Records every error that reached the command line's last resort (none may), and the exit
    code of every command run."""

    def __init__(self, monkeypatch):
        self.reached: list[BaseException] = []
        self.exits: Counter = Counter()
        original = cli.last_resort

        def record(exc):
            self.reached.append(exc)
            original(exc)

        monkeypatch.setattr(cli, "last_resort", record)


def invoke(here: Path, args: list[str], env: dict[str, str | None], last: LastResort):
    """Run the command line in `here`; the checks every case shares."""
    last.reached.clear()
    before = os.getcwd()
    os.chdir(here)
    try:
        out = CliRunner().invoke(cli.main, args, env=env)
    finally:
        os.chdir(before)
    assert not last.reached, (args, last.reached)
    assert out.exception is None or isinstance(out.exception, SystemExit), (args, out.exception)
    assert out.exit_code in DOCUMENTED, (args, out.exit_code, out.output)
    last.exits[out.exit_code] += 1
    assert "Traceback" not in out.output, (args, out.output)
    if out.exit_code not in (0, 1):
        assert "error: " in out.stderr.lower(), (args, out.output)
    return out


def reached(name: str, last: LastResort, expected: set[int]) -> None:
    """The exit codes the cases ended in (printed: docs/reliability.md quotes them); the
    generators must reach each outcome expected, or the checks of some went unexercised."""
    print(f"\n{name}: exit codes {dict(sorted(last.exits.items()))}")
    assert expected <= set(last.exits), (name, last.exits)


def base_env(sandbox, api_key: str = "wrong-key") -> dict[str, str | None]:
    """Never the public API: the sandbox, unless a case names a URL that is refused before any request."""
    return {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": api_key, "SQQUID_USERNAME": None,
            "SQQUID_PASSWORD": None, "SQQUID_CONFIG": None, "SQQUID_DUCKDB_MEMORY_LIMIT": None,
            "SQQUID_DUCKDB_THREADS": None, "SQQUID_FLUSH_ROWS": None}


# -- values ---------------------------------------------------------------------------------------

def either(usual: list[str], odd) -> st.SearchStrategy:
    """A value a user usually gives (three times in four), else an odd one."""
    usual = st.sampled_from(usual)
    return st.one_of(usual, usual, usual, odd)


text = st.text(max_size=10)
paths = st.sampled_from(["new.duckdb", "newdir", "mine.duckdb", "notes", "plain.txt", "notes/todo.txt", "data.csv",
                         "", "missing/dir/x.duckdb", "ünï cødé.duckdb", "lake", "s.duckdb", "catalog.json", "."])
new_paths = st.sampled_from(["out-new.csv", "newdir/out.csv", "ünï.jsonl", "missing/x.jsonl"])
numbers = st.one_of(st.sampled_from(["0", "1", "-1", "1e400", "inf", "-inf", "nan", "9" * 30, "0.5", "1e-300", "",
                                     "abc", "２", "0x10", "1_000"]),
                    st.integers().map(str), st.floats().map(repr))
dates = st.one_of(st.sampled_from(["2024-01-01", "0999-01-01", "1-01-01", "9999-12-31T23:59:59-05:00", "2999-01-01",
                                   "yesterday", "", "2024-13-45", "2024-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
                                   "2024-01-01T00:00:00+25:00", "+10000-01-01"]),
                  st.datetimes().map(lambda d: d.isoformat()), text)
durations = st.one_of(st.sampled_from(["1s", "0", "15m", "2h", "1d", "500ms", "1e30d", "99999999999d", "-1s", "1.5h",
                                       "1" * 40 + "d", "", "abc", "1 y", "nan", "infd"]),
                      st.integers(min_value=0).map(lambda n: f"{n}s"), text)
stream_lists = either(["orders", "locations", "products,inventory", "buffers,shipments"],
                      st.lists(st.sampled_from(STREAMS + ["nope", "", " ", "orders ", "ORDERS", "ordérs"]),
                               max_size=3).map(",".join))
urls = st.sampled_from(["", "not a url", "ftp://127.0.0.1/", "http://example.com", "http://", "https://",
                        "http://[::1", "SANDBOX"])
keys = st.sampled_from(["wrong-key"] * 3 + ["RIGHT"])
API = {"--base-url": either(["SANDBOX"], urls), "--api-key": keys, "--username": st.sampled_from(["", "nobody", USERNAME]),
       "--password": st.sampled_from(["", "x", PASSWORD]), "--rate": either(["0", "2", "100"], numbers),
       "--burst": either(["40", "1"], numbers), "--account": st.sampled_from(["acme", "nope", "", "ACME", "acme,acme", ","])}
DESTINATION = {"--duckdb": either(["new.duckdb", "s.duckdb"], paths), "--parquet": either(["lake", "newdir"], paths),
               "--iceberg": st.sampled_from(["wh", "notes", "plain.txt", "", "wh?namespace=", "wh?catalog=nope://x"]),
               "--config": either(["job.toml"], paths)}
COMMANDS = {
    "extract": {"--streams": stream_lists, "--catalog": either(["catalog.json"], paths),
                "--start-date": either(["2024-01-01", "2024-06-01T00:00:00Z"], dates),
                "--lookback": either(["1s", "15m", "1d"], durations), "--full-refresh": stream_lists, "--strict": None,
                "--schema-contract": st.sampled_from(["evolve", "x"]), "--no-progress": None, "-v": None, "-q": None,
                "--reread": either(["orders=30d", "products=all,shipments=0"],
                                   st.sampled_from(["orders=1e30d", "nope=1d", "orders", "=", "orders=-1d", "orders=all=1",
                                                    "orders=99999999999d", ",,", "orders=1d,orders=2d"])),
                "--verify-keys": None, "--hard-delete": None,
                "--log-format": st.sampled_from(["json", "xml"]), **DESTINATION, **API},
    "state show": {"ARG": st.sampled_from(STREAMS + ["nope"]), "--json": None, **DESTINATION},
    "state set": {"ARG": st.sampled_from(STREAMS + ["nope", ""]), "--cursor": either(["2024-01-01"], dates),
                  "--partition": st.sampled_from(["toship", "lost", ""]), **DESTINATION},
    "state reset": {"ARG": st.sampled_from(STREAMS + ["nope"]), "--yes": None, **DESTINATION},
    "discover": {"--output": either(["new-catalog.json", "catalog.json"], paths)},
    "check": {"--streams": stream_lists, "--config": either(["job.toml"], paths), "--json": None,
              "--schema-contract": st.sampled_from(["freeze", "y"]), **API},
    "load-inventory": {"ARG": either(["data.csv"], paths), "--mode": st.sampled_from(["partial", "full", "both"]),
                       "--duckdb": paths,
                       "--query": st.sampled_from(["SELECT 1", "SELECT * FROM orders", "DROP TABLE orders", "("]),
                       "--dry-run": None, "--yes": None, "--batch-size": either(["500", "1"], numbers),
                       "--journal": new_paths, "--diff-out": new_paths, "--threshold": either(["0.05", "1"], numbers),
                       "--zero": st.sampled_from(["unlisted-skus", "unlisted-records", "all"]),
                       "--via": st.sampled_from(["chunks", "full-endpoint", "carrier-pigeon"]),
                       "--baseline": paths, "--baseline-max-age": either(["1h", "90s"], durations), "--no-progress": None,
                       "--config": either(["job.toml"], paths), **API},
    "load-buffers": {"ARG": either(["buffers.csv", "data.csv"], paths), "--mode": st.sampled_from(["partial", "full", "x"]),
                     "--from-duckdb": st.sampled_from(["SELECT 1", "SELECT * FROM buffers", "DROP TABLE orders", "("]),
                     "--duckdb": paths, "--dry-run": None, "--yes": None, "--threshold": either(["0.05", "1"], numbers),
                     "--channels": st.sampled_from(["1", "1,2", "0", "x", "", "-3", "1,,2", "9" * 30]),
                     "--journal": new_paths, "--diff-out": new_paths, "--no-progress": None,
                     "--config": either(["job.toml"], paths), **API},
    "sql": {"ARG": st.sampled_from(["SELECT 1", "SELECT * FROM orders", "DROP TABLE orders", "(", "SELECT * FROM _sqquid_state",
                                    "CREATE TABLE x AS SELECT 1"]),
            "--format": st.sampled_from(["table", "csv", "json", "xml"]), "--max-rows": either(["0", "5"], numbers),
            **DESTINATION},
    "capture": {"ARG": either(["newdir"], paths), "--streams": stream_lists, "--max-pages": either(["1", "2"], numbers),
                "--name": either(["c1"], text), "--no-verify": None, "--config": either(["job.toml"], paths), **API},
    "upgrade": {"--account": either(["acme"], st.sampled_from(["", "Bad Name", "acme,globex", "ünï", "a" * 300])),
                "--duckdb": either(["s.duckdb", "mine.duckdb"], paths), "--parquet": either(["lake"], paths),
                "--config": either(["job.toml"], paths)},
}


# what a command is nearly always given (its required argument and options, a state command's destination)
USUAL = {"state show": ["--duckdb"], "state set": ["ARG", "--cursor", "--duckdb"], "state reset": ["--parquet"],
         "load-inventory": ["ARG", "--mode"], "load-buffers": ["ARG"], "capture": ["ARG"], "sql": ["ARG"],
         "upgrade": ["--account"]}


@st.composite
def command_lines(draw):
    """A command and any of its options, each with a value a user might give."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    args = name.split()
    for option, values in COMMANDS[name].items():
        usual = option in USUAL.get(name, ()) and draw(st.integers(0, 9))  # nine times in ten
        if not usual and draw(st.integers(0, 4)):
            continue  # any other option given in about a fifth of the cases
        if values is None:
            args.append(option)
        elif option == "ARG":
            args.append(draw(values))
        else:
            args += [option, draw(values)]
    return args


# -- the command line ------------------------------------------------------------------------------


def test_every_command_and_option_ends_in_a_documented_exit_and_touches_nothing_of_the_users(world, tmp_path, monkeypatch):
    sandbox, template = world
    last = LastResort(monkeypatch)

    @fuzz_settings(CASES["options"])
    @given(args=command_lines())
    def case(args):
        here = workspace(template, tmp_path)
        before = fingerprints(here)
        args = [sandbox.url if a == "SANDBOX" else a for a in args]
        right = "RIGHT" in args
        args = [API_KEY if a == "RIGHT" else a for a in args]
        if right and "--rate" in COMMANDS.get(args[0], {}):
            args += ["--rate", "0"]  # a case that reaches the sandbox is not paced: no test waits
        out = invoke(here, args, base_env(sandbox, API_KEY if right else "wrong-key"), last)
        assert fingerprints(here) == before, args
        shutil.rmtree(here)

    case()
    reached("options", last, {0, 2, 3})


# -- config files -----------------------------------------------------------------------------------

SCHEMA = {
    "api": ["base_url", "api_key_env", "username", "username_env", "password_env", "rate", "burst", "api_key", "nope"],
    "destination": ["duckdb", "parquet", "nope"],
    "extract": ["streams", "start_date", "lookback", "catalog", "strict", "full_refresh", "schema_contract"],
    "tuning": ["duckdb_memory_limit", "duckdb_threads", "flush_rows"],
    "reread": ["orders", "products", "nope"],
    "accounts.acme": ["base_url", "api_key_env", "username_env", "password_env", "rate", "burst", "start_date",
                      "streams", "api_key", "nope"],
    'accounts."Bad Name"': ["api_key_env"],
    "nope": ["x"],
}
toml_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str), st.sampled_from(["inf", "nan", "-inf", "1e400", "0.0"]),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.sampled_from(['"mine.duckdb"', '"notes"', '"lake"', '"s.duckdb"', '"catalog.json"', '"data.csv"', '"http://example.com"',
                     '"SQQUID_API_KEY"', '"UNSET_VARIABLE"', '"2999-01-01"', '"1e30d"', '"lots"', '"99999999999999"',
                     '"30d"', '"all"', '"0"']),
    st.lists(st.sampled_from(['"orders"', '"nope"', "1", '""']), max_size=3).map(lambda v: "[" + ", ".join(v) + "]"),
    text.map(json.dumps), st.just("{ a = 1 }"),
)


@st.composite
def config_files(draw) -> bytes:
    lines = []
    for section in draw(st.lists(st.sampled_from(sorted(SCHEMA)), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(SCHEMA[section]), max_size=4, unique=True)):
            lines.append(f"{key} = {draw(toml_values)}")
    data = "\n".join(lines).encode()
    damage = draw(st.sampled_from(["none", "none", "truncate", "utf-16", "bytes"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "utf-16":
        data = data.decode().encode("utf-16")
    elif damage == "bytes":
        data = data + draw(st.binary(min_size=1, max_size=8))
    return data


def test_config_files_end_in_a_documented_exit_and_touch_nothing_of_the_users(world, tmp_path, monkeypatch):
    sandbox, template = world
    last = LastResort(monkeypatch)

    @fuzz_settings(CASES["config"])
    @given(data=config_files(), command=st.sampled_from([["extract"], ["state", "show"], ["check"], ["state", "reset", "--yes"]]))
    def case(data, command):
        here = workspace(template, tmp_path)
        data = data.replace(b"http://example.com", sandbox.url.encode())  # never a request beyond loopback
        (here / "sqquid.toml").write_bytes(data)
        before = fingerprints(here, USERS + ["sqquid.toml"])
        invoke(here, [*command, "--config", "sqquid.toml"], base_env(sandbox), last)
        assert fingerprints(here, USERS + ["sqquid.toml"]) == before
        shutil.rmtree(here)

    case()
    reached("config", last, {2, 3})


# -- catalogs ----------------------------------------------------------------------------------------

json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.sampled_from(["false", "true", "yes"]),
                        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def catalogs(draw) -> bytes:
    catalog = build_catalog()
    streams = catalog["streams"]
    for _ in range(draw(st.integers(0, 4))):
        if not streams:
            break
        entry = streams[draw(st.integers(0, len(streams) - 1))]
        change = draw(st.sampled_from(["select", "field", "duplicate", "drop", "rename", "metadata", "crumb"]))
        metadata = entry.get("metadata") if isinstance(entry, dict) else None
        items = metadata if isinstance(metadata, list) and len(metadata) > 1 else None
        if change == "select" and items:
            items[0]["metadata"]["selected"] = draw(json_values)
        elif change == "field" and items:
            items[draw(st.integers(1, len(items) - 1))]["metadata"]["selected"] = draw(json_values)
        elif change == "duplicate":
            streams.append(json.loads(json.dumps(entry)))
        elif change == "drop":
            streams.remove(entry)
        elif change == "rename":
            entry["tap_stream_id"] = draw(json_values)
        elif change == "metadata":
            entry["metadata"] = draw(json_values)
        elif change == "crumb" and items:
            items[1]["breadcrumb"] = draw(st.lists(json_values, max_size=3))
    data = json.dumps(catalog).encode()
    if draw(st.integers(0, 5)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return data


def test_catalogs_end_in_a_documented_exit(world, tmp_path, monkeypatch):
    sandbox, template = world
    last = LastResort(monkeypatch)

    @fuzz_settings(CASES["catalog"])
    @given(data=catalogs(), streams=st.sampled_from([[], ["--streams", "orders"], ["--full-refresh", "locations"]]))
    def case(data, streams):
        here = workspace(template, tmp_path)
        (here / "edited.json").write_bytes(data)
        out = invoke(here, ["extract", "--catalog", "edited.json", *streams, "--duckdb", "new.duckdb"], base_env(sandbox), last)
        assert out.exit_code in (2, 3)  # refused, or accepted up to the (refused) login
        assert not (here / "new.duckdb").exists()  # nothing created before the options are sound
        shutil.rmtree(here)

    case()
    reached("catalog", last, {2, 3})


# -- state files --------------------------------------------------------------------------------------

cursor_values = either(["2024-01-01T00:00:00.000000Z", "2024-01-01"],
                       st.one_of(st.sampled_from(["999-01-01T00:00:00.000000Z", "not a date", "2999-01-01", "",
                                                  "9999-12-31T23:59:59-05:00"]), json_values))
sound_entries = st.fixed_dictionaries(
    {"cursors": st.dictionaries(st.sampled_from(["_", "toship", "x"]), cursor_values, max_size=2)},
    optional={"last_run_at": st.one_of(st.none(), st.just("2024-01-01T00:00:00Z"), json_values),
              "last_run_id": st.one_of(st.just("r1"), json_values), "rows_last_run": st.one_of(st.integers(), json_values),
              "extra": json_values})
entries = st.one_of(sound_entries, sound_entries, sound_entries, json_values)


@st.composite
def state_texts(draw) -> bytes:
    """A state file: entries of real and unknown streams (some twice), then maybe damaged."""
    names = draw(st.lists(st.sampled_from(["orders", "locations", "nope"]), max_size=4))
    text = "{" + ", ".join(f"{json.dumps(n)}: {json.dumps(draw(entries))}" for n in names) + "}"
    damage = draw(st.sampled_from(["none"] * 8 + ["truncate", "utf-16", "latin-1", "bytes", "type", "deep"]))
    if damage == "truncate":
        text = text[:draw(st.integers(0, len(text)))]
    elif damage == "type":
        text = json.dumps(draw(json_values))
    elif damage == "deep":
        text = "[" * 100_000
    data = text.encode("utf-16" if damage == "utf-16" else "utf-8")
    if damage == "latin-1":
        data = (text + "é").encode("latin-1")
    elif damage == "bytes":
        data = draw(st.binary(max_size=20))
    return data


LOOKS = st.sampled_from([["state", "show"], ["state", "show", "locations", "--json"]])


def _look(here: Path, look: list[str], option: list[str], env, last, allowed: set[int]) -> int:
    shown = invoke(here, [*look, *option], env, last)
    assert shown.exit_code in allowed, shown.output
    return shown.exit_code


def test_parquet_state_files_are_read_or_refused_clearly(world, tmp_path, monkeypatch):
    sandbox, template = world
    last = LastResort(monkeypatch)

    @fuzz_settings(CASES["parquet_state"])
    @given(data=state_texts(), look=LOOKS, also_extract=st.integers(0, 4).map(lambda n: n == 0))  # a fifth extract
    def case(data, look, also_extract):
        here = workspace(template, tmp_path)
        state = here / "lake" / "_sqquid_state.json"
        state.write_bytes(data)
        before = fingerprints(here, USERS + ["lake/_sqquid_state.json"])
        shown = _look(here, look, ["--parquet", "lake"], base_env(sandbox), last, {0, 7})
        assert fingerprints(here, USERS + ["lake/_sqquid_state.json"]) == before  # looking never writes
        if also_extract:
            out = invoke(here, ["extract", "--streams", "orders,locations", "--rate", "0", "--parquet", "lake"],
                         base_env(sandbox, API_KEY), last)
            every = look == ["state", "show"]  # every stream's state read: the extract must read them too
            assert out.exit_code in ({0} if shown == 0 and every else {0, 7}), out.output
        assert fingerprints(here) == {k: v for k, v in before.items() if k in USERS}  # the user's, as they were
        shutil.rmtree(here)

    case()
    reached("parquet state", last, {0, 7})


@st.composite
def duckdb_states(draw) -> tuple[list[tuple], str]:
    rows = draw(st.lists(st.tuples(st.sampled_from(["orders", "locations", "nope", None]),
                                   st.one_of(entries.map(json.dumps), st.none(), text)), max_size=4))
    shape = draw(st.sampled_from(["same", "same", "drop state", "drop stream", "drop updated_at", "extra column",
                                  "integer state", "gone", "view"]))
    return rows, shape


def _damage_duckdb(db: Path, rows: list[tuple], shape: str) -> None:
    with duckdb.connect(str(db)) as conn:
        conn.execute("DELETE FROM _sqquid_state")
        for stream, value in rows:
            conn.execute("INSERT INTO _sqquid_state VALUES (?, ?, now())", [stream, value])
        if shape.startswith("drop "):
            conn.execute(f"ALTER TABLE _sqquid_state DROP COLUMN {shape[5:]}")
        elif shape == "extra column":
            conn.execute("ALTER TABLE _sqquid_state ADD COLUMN extra INTEGER")
        elif shape == "integer state":
            conn.execute("CREATE OR REPLACE TABLE _sqquid_state (stream VARCHAR, state INTEGER, updated_at TIMESTAMPTZ)")
            conn.execute("INSERT INTO _sqquid_state VALUES ('orders', 5, now())")
        elif shape in ("gone", "view"):
            conn.execute("DROP TABLE _sqquid_state")
            if shape == "view":
                conn.execute("CREATE VIEW _sqquid_state AS SELECT 'orders' AS stream, '{}' AS state")


def test_duckdb_state_tables_are_read_or_refused_clearly(world, tmp_path, monkeypatch):
    sandbox, template = world
    last = LastResort(monkeypatch)

    @fuzz_settings(CASES["duckdb_state"])
    @given(damage=duckdb_states(), look=LOOKS, also_extract=st.integers(0, 4).map(lambda n: n == 0))
    def case(damage, look, also_extract):
        here = workspace(template, tmp_path)
        _damage_duckdb(here / "s.duckdb", *damage)
        before = fingerprints(here, USERS + ["s.duckdb"])
        # no state table at all: not an extract's database (2); else read (0) or corrupt (7)
        shown = _look(here, look, ["--duckdb", "s.duckdb"], base_env(sandbox), last, {0, 2, 7})
        assert fingerprints(here, USERS + ["s.duckdb"]) == before  # looking never writes
        if also_extract:
            out = invoke(here, ["extract", "--streams", "orders,locations", "--rate", "0", "--duckdb", "s.duckdb"],
                         base_env(sandbox, API_KEY), last)
            # a table that reads but cannot be written (a view, a column missing): a StateError too
            sound = damage[1] in ("same", "extra column") and look == ["state", "show"]
            assert out.exit_code in ({0} if shown == 0 and sound else {0, 2, 7}), out.output
        assert fingerprints(here) == {k: v for k, v in before.items() if k in USERS}
        shutil.rmtree(here)

    case()
    reached("duckdb state", last, {0, 7})


# -- reverse-load journals -------------------------------------------------------------------------

journal_lines = st.one_of(
    st.fixed_dictionaries({"event": st.sampled_from(["batch", "complete", "other"]), "input": st.sampled_from(["H", "other"]),
                           "batch": st.one_of(st.text(max_size=4), st.integers())}).map(json.dumps),
    json_values.map(json.dumps), text,
)


@st.composite
def journals(draw) -> bytes:
    data = "".join(line.replace("\n", " ") + "\n" for line in draw(st.lists(journal_lines, max_size=6))).encode()
    damage = draw(st.sampled_from(["none", "none", "truncate", "bytes", "utf-16"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "bytes":
        data = data + draw(st.binary(min_size=1, max_size=6))
    elif damage == "utf-16":
        data = data.decode().encode("utf-16")
    return data


def test_journals_are_read_or_refused_clearly(tmp_path):
    outcomes = []

    @fuzz_settings(CASES["journal"])
    @given(data=journals())
    def case(data):
        path = tmp_path / "j.jsonl"
        path.write_bytes(data)
        try:
            journal = Journal(path, "H")
        except (StateError, ConfigError) as exc:
            assert "j.jsonl" in str(exc) and "nothing was sent" in str(exc)
            outcomes.append("refused")
            return
        assert path.read_bytes() == data  # reading never writes
        entries = [_entry(line) for line in data.decode("utf-8").splitlines()]
        mine = [e for e in entries if isinstance(e, dict) and e.get("input") == "H"]
        assert journal.acknowledged == {str(e.get("batch")) for e in mine if e.get("event") == "batch"}
        assert journal.complete == any(e.get("event") == "complete" for e in mine)
        outcomes.append("read")

    case()
    print(f"\njournals: {dict(Counter(outcomes))}")
    assert {"read", "refused"} <= set(outcomes)


def _entry(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def test_state_entries_parse_or_are_corrupt(tmp_path):
    """Any JSON as one stream's entry: a StreamState, or a StateError naming where it is."""

    @fuzz_settings(CASES["state_entry"])
    @given(entry=entries)
    def case(entry):
        try:
            state = StreamState.from_json(json.dumps(entry), "here")
        except StateError as exc:
            assert str(exc).startswith("here: corrupt state")
            outcomes.append("corrupt")
            return
        assert StreamState.from_json(state.to_json(), "again") == state  # what is read is written back alike
        outcomes.append("read")

    outcomes = []
    case()
    print(f"\nstate entries: {dict(Counter(outcomes))}")
    assert {"read", "corrupt"} <= set(outcomes)


# -- the Singer tap (`tap-sqquid`): its config.json keys and its state file --------------------------

TAP_KEYS = ["api_key", "username", "password", "base_url", "start_date", "lookback", "rate", "burst", "streams",
            "strict", "schema_contract", "nope"]
tap_values = st.one_of(json_values, st.sampled_from(["RIGHT", "SANDBOX", "http://example.com", "2024-01-01", "2999-01-01",
                                                     "1e30d", "1s", "discard", "freeze", 1e308, -1, 0, 10**30]),
                       st.lists(st.sampled_from(STREAMS + ["nope"]), max_size=2))


@st.composite
def tap_files(draw) -> tuple[bytes, bytes | None]:
    config = {key: draw(tap_values) for key in draw(st.lists(st.sampled_from(TAP_KEYS), max_size=5, unique=True))}
    if draw(st.integers(0, 2)):  # most cases can log in: they reach the state and the run
        config.update(api_key="RIGHT", rate=0)
    state = None
    if draw(st.booleans()):
        bookmarks = {name: draw(entries) for name in draw(st.lists(st.sampled_from(["locations", "nope"]), max_size=2))}
        raw = draw(st.sampled_from(["ok", "type", "truncate"]))
        state = json.dumps({"bookmarks": bookmarks, "sqquid_keys": draw(st.dictionaries(text, json_values, max_size=1))})
        state = (json.dumps(draw(json_values)) if raw == "type" else state[:len(state) // 2] if raw == "truncate"
                 else state).encode()
    return json.dumps(config).encode(), state


def test_the_tap_config_and_state_end_in_a_documented_exit(world, tmp_path):
    from sqquid_etl.singer_cli import main as tap

    sandbox, template = world
    exits: Counter = Counter()

    @fuzz_settings(CASES["tap"])
    @given(files=tap_files(), catalog=st.booleans())
    def case(files, catalog):
        config, state = files
        config = config.replace(b'"RIGHT"', json.dumps(API_KEY).encode()).replace(b'"SANDBOX"', json.dumps(sandbox.url).encode())
        config = config.replace(b"http://example.com", sandbox.url.encode())  # never a request beyond loopback
        here = tmp_path / f"tap-{next(_counter)}"
        here.mkdir()
        (here / "config.json").write_bytes(config)
        args = ["--config", str(here / "config.json")]
        if catalog:
            shutil.copy(template / "catalog.json", here / "catalog.json")
            args += ["--catalog", str(here / "catalog.json")]
        if state is not None:
            (here / "state.json").write_bytes(state)
            args += ["--state", str(here / "state.json")]
        out = CliRunner().invoke(tap, args, env=base_env(sandbox))
        assert out.exception is None or isinstance(out.exception, SystemExit), (args, config, state, out.exception)
        assert out.exit_code in DOCUMENTED and "Traceback" not in out.output, (config, out.output)
        if state is not None:
            assert (here / "state.json").read_bytes() == state  # the tap writes its state to stdout only
        exits[out.exit_code] += 1
        shutil.rmtree(here)

    case()
    print(f"\ntap: exit codes {dict(sorted(exits.items()))}")
    assert {0, 2, 7} <= set(exits)
