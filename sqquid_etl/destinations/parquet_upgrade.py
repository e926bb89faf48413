"""`sqquid-etl upgrade --account NAME` for a local Parquet directory: made multi-account in place
(`parquet_layout.py`), its tables, state, run records and quarantined records becoming account
NAME's. Files are never changed in place; the upgrade is a new generation:

1. prepare (nothing visible changes): each table's current files copied, with a leading
   `account` column, into a new generation of the table's `account=NAME` partition; the state,
   the run records and the quarantine files copied, stamped likewise, under `.sqquid/upgrade/`;
2. commit: `.sqquid/upgrade.json` written in one rename (the plan: the account and each table's
   new generation);
3. apply, which a re-run repeats until done (every step can be made again): each table's symlink
   replaced by its directory of partitions, the state and records moved to the account's place,
   the directory marked multi-account (`.sqquid/accounts/`), the old generations removed.

A crash before 2 leaves the single-account directory as it was (the prepared files are removed
by the next upgrade); after 2, the directory is refused by extracts until the upgrade is run
again to finish. The directory's lock is held throughout: no extract runs meanwhile."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

import duckdb

from ..errors import ConfigError
from .account_scope import ACCOUNT, check_account
from .files import fsync_path, replace_symlink, write_atomic
from .merge_sql import sql_path
from .parquet_layout import REJECTED_DIR, RUNS_DIR, STATE_FILE, UPGRADE_JOURNAL, ParquetLayout, flock, release


def upgrade_parquet(root: str | Path, account: str) -> str:
    """Make the directory at `root` multi-account, its rows `account`'s; returns what was done.
    One already multi-account is left as it is (a no-op when `account` is one of its accounts,
    else a ConfigError)."""
    check_account(account)
    single, multi = ParquetLayout(Path(root)), ParquetLayout(Path(root), account)
    held = [flock(single.meta / "lock", fcntl.LOCK_EX, str(single.root))]
    try:
        journal = single.meta / UPGRADE_JOURNAL
        if journal.exists():
            plan = json.loads(journal.read_text(encoding="utf-8"))
            if plan["account"] != account:
                raise ConfigError(f"{single.root}: the interrupted upgrade is to account {plan['account']!r}; run "
                                  f"'sqquid-etl upgrade --account {plan['account']}' to finish it")
        elif single.multi_account():
            return _already(single, account)
        else:
            plan = _prepare(single, multi)
            write_atomic(journal, json.dumps(plan).encode())  # the commit point
        _apply(single, multi, plan)
        journal.unlink()
        fsync_path(single.meta)
    finally:
        release(held)
    shown = ", ".join(sorted(plan["tables"])) or "none yet"
    return (f"{single.root}: upgraded to a multi-account destination; its rows, states and run records are account "
            f"{account!r}'s (tables: {shown})")


def _already(layout: ParquetLayout, account: str) -> str:
    accounts = sorted(p.stem for p in layout.accounts.glob("*.lock"))
    if accounts and account not in accounts:
        raise ConfigError(f"{layout.root} is already a multi-account destination (accounts: {', '.join(accounts)}); "
                          "upgrade turns a single-account one into one: nothing was changed")
    return f"{layout.root} is already a multi-account destination (accounts: {', '.join(accounts) or 'none yet'}); nothing was changed"


def _prepared(layout: ParquetLayout) -> Path:
    return layout.meta / "upgrade"


def _prepare(single: ParquetLayout, multi: ParquetLayout) -> dict:
    """Every file stamped with the account, nothing visible changed; the plan to apply."""
    prepared = _prepared(single)
    shutil.rmtree(prepared, ignore_errors=True)  # an upgrade that crashed before its commit
    tables: dict[str, str] = {}
    with duckdb.connect() as sql:
        for link in sorted(p for p in single.root.iterdir() if p.is_symlink() and not p.name.startswith(("_", "."))):
            current = single.current_generation(link.name)
            if current is None:
                continue
            shutil.rmtree(multi.table_generations(link.name), ignore_errors=True)
            generation = multi.new_generation(link.name, f"upgrade-{uuid.uuid4().hex[:8]}")
            _stamp_files(sql, sorted(current.glob("*.parquet")), generation, multi.account)
            tables[link.name] = str(generation.relative_to(single.root))
        for name in (RUNS_DIR, REJECTED_DIR):
            (prepared / name).mkdir(parents=True)
            _stamp_files(sql, sorted((single.root / name).glob("*.parquet")), prepared / name, multi.account)
    if single.state_file.exists():
        write_atomic(prepared / STATE_FILE, single.state_file.read_bytes())
    fsync_path(prepared)
    return {"account": multi.account, "tables": tables}


def _stamp_files(sql, files: list[Path], target: Path, account: str) -> None:
    """Each file copied into `target` with a leading account column (the name is checked: a safe literal)."""
    for path in files:
        if ACCOUNT in {r[0] for r in sql.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(path)})").fetchall()}:
            raise ConfigError(f"{path} already has a column named {ACCOUNT!r}: it cannot be upgraded "
                              "(a multi-account destination adds that column)")
        sql.execute(f"COPY (SELECT '{account}'::VARCHAR AS {ACCOUNT}, * FROM read_parquet({sql_path(path)})) "
                    f"TO {sql_path(target / path.name)} (FORMAT parquet)")
        fsync_path(target / path.name)
    fsync_path(target)


def _apply(single: ParquetLayout, multi: ParquetLayout, plan: dict) -> None:
    """The committed plan made true; each step may be made again (a re-run after a crash)."""
    for table, generation in plan["tables"].items():
        link = single.root / table
        if link.is_symlink():
            link.unlink()
        link.mkdir(exist_ok=True)
        replace_symlink(multi.table_link(table), single.root / generation)
    prepared = _prepared(single)
    if (prepared / STATE_FILE).exists():
        multi.state_file.parent.mkdir(exist_ok=True)
        os.replace(prepared / STATE_FILE, multi.state_file)
    single.state_file.unlink(missing_ok=True)
    for name, target in ((RUNS_DIR, multi.runs), (REJECTED_DIR, multi.rejected)):
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted((prepared / name).glob("*.parquet")) if (prepared / name).is_dir() else ():
            os.replace(path, target / path.name)
        for old in (single.root / name).glob("*.parquet"):
            old.unlink()
    multi.accounts.mkdir(exist_ok=True)
    (multi.accounts / f"{multi.account}.lock").touch()
    for table in plan["tables"]:
        for old in (single.generations / table).iterdir():
            if not old.name.startswith("account="):
                shutil.rmtree(old, ignore_errors=True)
    for old in single.staging.iterdir() if single.staging.is_dir() else ():
        if not old.name.startswith("account="):
            shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(prepared, ignore_errors=True)
