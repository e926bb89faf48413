"""Buffers write-back: sending a plan, one request per operation (POST /v1/buffers, PATCH and
DELETE /v1/buffers/{id}), each acknowledged operation journaled.

A re-run compares the input against the account again, so it does only what remains: a buffer
created or changed before a crash is found as it is now (even one whose answer was lost). The
journal keeps the record of what was done and lets one load at a time use it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .buffers_report import BuffersReport
from .client import SqquidClient
from .errors import ApiError, SqquidError
from .reverse_journal import Journal, journal_lock

BUFFERS_PATH = "/v1/buffers"
SENT_OPS = ("create", "update", "delete")


def send_plan(client: SqquidClient, plan: pd.DataFrame, report: BuffersReport, journal: str | Path | None,
              key: str) -> None:
    """Send every create, update and delete of `plan`, in its order."""
    if journal is None:
        _send(client, plan, report, None)
        return
    with journal_lock(Path(journal)):
        book = Journal(Path(journal), key)
        report.acknowledged_before = len(book.acknowledged)
        book.check_writable()
        _send(client, plan, report, book)
        book.record_complete(report.operations_sent, len(plan))


def _send(client: SqquidClient, plan: pd.DataFrame, report: BuffersReport, book: Journal | None) -> None:
    todo = plan[plan["op"].isin(SENT_OPS)]
    for index, row in enumerate(todo.itertuples(index=False), start=1):
        try:
            _one(client, row, report)
        except SqquidError as exc:
            kwargs = {"status": exc.status, "endpoint": exc.endpoint} if isinstance(exc, ApiError) else {}
            raise type(exc)(f"buffers load stopped at operation {index} of {len(todo)} ({row.op} "
                            f"{_label(row)}): {exc}. {index - 1} operation(s) were done: re-run with the same "
                            "input; it compares again and does only what remains", **kwargs) from exc
        if book is not None:
            book.record_batch(_digest(row), index, 1)
        report.operations_sent += 1


def _one(client: SqquidClient, row: Any, report: BuffersReport) -> None:
    if row.op == "create":
        body = {name: value for name, value in (("sku", row.sku), ("channel_id", row.channel_id),
                                                 ("location_external_id", row.location_external_id))
                if value is not None}
        client.post(BUFFERS_PATH, {**body, "qty": int(row.new_qty)})
    elif row.op == "update":
        client.patch(f"{BUFFERS_PATH}/{int(row.id)}", {"qty": int(row.new_qty)})
    else:
        try:
            client.delete(f"{BUFFERS_PATH}/{int(row.id)}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            report.already_gone += 1  # deleted by someone else meanwhile: the goal is reached


def _label(row: Any) -> str:
    return (f"buffer {'' if row.id is pd.NA else f'id {row.id} '}(sku {row.sku!r}, channel {row.channel_id!r}, "
            f"location {row.location_external_id!r})")


def _digest(row: Any) -> str:
    values = [row.op, None if row.id is pd.NA else int(row.id), row.sku, row.channel_id, row.location_external_id,
              None if row.new_qty is pd.NA else int(row.new_qty)]
    return hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()
