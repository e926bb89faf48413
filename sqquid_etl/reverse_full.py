"""Reverse load: a full update, which sets the input's records and zeroes the others. It sees
before it zeroes: the account's current inventory is read first (from `--baseline` or through the
`products` and `inventory` streams), the diff counts every record that changes or is zeroed, and
the guard refuses, without `--yes`, an update that zeroes more than the threshold or that touches
inventory the tool cannot see.

Sent the default way (`via="chunks"`), a full update is explicit partial updates: the input's
records and a 0 for every seen record the chosen semantics zeroes (`zero`: "unlisted-skus", the
records of skus not in the input, as the reference's sentence says; "unlisted-records", every
record not in the input), in journaled chunks: whatever the server's reading of
`PATCH /v1/inventory/full`, the effect is the one counted. `via="full-endpoint"` sends that one
request instead (bounded to one body of `MAX_BODY_BYTES`); the server then zeroes by its own
reading, including inventory the tool cannot see, so it always needs `--yes`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .client import SqquidClient
from .errors import ConfigError
from .reverse_chunks import MAX_BODY_BYTES, plan_chunks
from .reverse_current import Current, Progress, read_account, release_memory
from .reverse_diff import compute_diff, count_diff, write_diff
from .reverse_report import LoadReport
from .reverse_send import send_chunks
from .reverse_validate import KEY, PreparedInventory, build_payload

FULL_PATH = "/v1/inventory/full"
VIA_CHOICES = ("chunks", "full-endpoint")


@dataclass
class FullOptions:
    zero: str = "unlisted-skus"
    via: str = "chunks"
    confirm: bool = False
    dry_run: bool = False
    zero_threshold: float = 0.05
    batch_size: int = 500
    journal: str | Path | None = None
    diff_out: str | Path | None = None


def send_full(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, options: FullOptions,
              baseline: Current | None, progress: Progress | None = None) -> None:
    current = baseline if baseline is not None else read_account(client, set(prepared.records["sku"]), progress)
    if baseline is not None:
        _add_input_skus_the_baseline_lacks(client, prepared, current, progress)
    diff = compute_diff(prepared.records, current.records, "full", options.zero)
    release_memory()
    count_diff(diff, report, "full", len(current.records))
    _count_unseen(current, report, options.via)
    if options.diff_out is not None:
        write_diff(diff, options.diff_out, report)
    reasons = _reasons_to_confirm(current.records, diff, report, options)
    if options.via == "full-endpoint":
        endpoint_plan = _endpoint_plan(prepared, diff, options.zero)
        check_body_size(endpoint_plan)
    if options.dry_run:
        report.warnings.extend(f"sending it needs --yes (confirm=True): {r}" for r in reasons)
        if options.via == "chunks":
            send_chunks(client, _plan(diff), report, batch_size=options.batch_size, journal=options.journal,
                        dry_run=True, key=_journal_key(prepared, options))
        return
    if reasons and not options.confirm:
        raise ConfigError("full update refused; nothing was sent:\n" + "\n".join(f"  - {r}" for r in reasons)
                          + "\nCheck the diff (--dry-run --diff-out diff.csv), then re-run with --yes (confirm=True)")
    if options.via == "full-endpoint":
        payload = build_payload(endpoint_plan)
        client.patch(FULL_PATH, payload)
        report.batches_total = report.batches_sent = 1
        report.skus_sent = len(payload)
        report.records_sent = sum(len(p["inventory"]) for p in payload)
        return
    send_chunks(client, _plan(diff), report, batch_size=options.batch_size, journal=options.journal,
                dry_run=False, key=_journal_key(prepared, options))


def _add_input_skus_the_baseline_lacks(client: SqquidClient, prepared: PreparedInventory, current: Current,
                                       progress: Progress | None) -> None:
    """Input skus no table of the baseline knows (new skus, inventory without a product): read from the API."""
    from .reverse_current import fetch_current

    import pyarrow as pa
    import pyarrow.compute as pc

    skus = pa.array(prepared.records["sku"].cat.categories, pa.string())  # the input's (and no other)
    missing = pd.Index(skus.filter(pc.invert(pc.is_in(skus, value_set=pa.array(current.skus, pa.string()))))
                       .to_pandas(), dtype="str")
    if len(missing):
        records, unlistable = fetch_current(client, missing.tolist(), progress)
        current.records = pd.concat([current.records, records], ignore_index=True)
        current.skus = current.skus.union(missing)
        current.unlistable = sorted(set(current.unlistable) | set(unlistable))


def _plan(diff: pd.DataFrame) -> pd.DataFrame:
    """The records a chunked full update sends (sorted): the input's, and a 0 for every record
    the update zeroes (already 0 or not: the plan does not depend on quantities, so a re-run
    after a crash makes the same chunks)."""
    plan = diff.loc[diff["change"] != "kept", KEY + ["new_qty"]].rename(columns={"new_qty": "qty_on_hand"})
    return plan.reset_index(drop=True)


def _endpoint_plan(prepared: PreparedInventory, diff: pd.DataFrame, zero: str) -> pd.DataFrame:
    """The body of `PATCH /v1/inventory/full`: the input's records and, for `unlisted-records`, a 0
    for every other seen record of the skus it lists (the server zeroes the unlisted skus)."""
    plan = prepared.records[KEY + ["qty_on_hand"]]
    if zero != "unlisted-records":
        return plan
    listed = diff["sku"].isin(plan["sku"].unique()) & diff["change"].isin(["zeroed", "unchanged"])
    others = diff.loc[listed, KEY].merge(plan[KEY], on=KEY, how="left", indicator=True)
    others = others.loc[others["_merge"] == "left_only", KEY].assign(qty_on_hand=0)
    return pd.concat([plan, others], ignore_index=True).sort_values(KEY, kind="stable", ignore_index=True)


def _count_unseen(current: Current, report: LoadReport, via: str) -> None:
    """What the update may touch that could not be read: counted, and named in the report."""
    report.cannot_be_seen = len(current.unlistable) + current.products_unreadable
    if current.unlistable:
        report.warnings.append(f"cannot be seen: {len(current.unlistable)} sku(s) that cannot be listed (a comma, "
                               f"or too long for a URL), e.g. {current.unlistable[:3]}")
    if current.products_unreadable:
        report.warnings.append(f"cannot be seen: {current.products_unreadable} product record(s) could not be read, "
                               "so their skus' inventory is unknown")
    if via == "full-endpoint":
        report.warnings.append("cannot be seen: inventory of skus that are no product or variant (the API lists "
                               "inventory only by sku); PATCH /v1/inventory/full zeroes it too, uncounted")
    else:
        report.warnings.append("inventory of skus that are no product or variant cannot be listed by the API: "
                               "this update leaves any such record as it is")


def _reasons_to_confirm(current: pd.DataFrame, diff: pd.DataFrame, report: LoadReport,
                        options: FullOptions) -> list[str]:
    """Why the update needs --yes (confirm=True); empty when it may go without."""
    reasons = []
    in_stock = int((current["current_qty"] > 0).sum())
    zeroed = int(((diff["change"] == "zeroed") & (diff["current_qty"] > 0).fillna(False)).sum())
    share = zeroed / in_stock if in_stock else 0.0
    if share > options.zero_threshold:
        reasons.append(f"it would set {zeroed} of the {in_stock} inventory records currently above 0 to 0 "
                       f"({share:.1%}, more than the threshold {options.zero_threshold:.1%}); "
                       f"{report.records_zeroed} record(s) in all are zeroed")
    if report.cannot_be_seen:
        reasons.append(f"{report.cannot_be_seen} sku(s) or product(s) cannot be seen (see the warnings): their "
                       "inventory is not counted")
    if options.via == "full-endpoint":
        reasons.append("PATCH /v1/inventory/full also zeroes inventory the tool cannot see (skus that are no "
                       "product or variant), which is not counted")
        if options.zero == "unlisted-skus" and report.kept:
            reasons.append(f"{report.kept} other record(s) of listed skus are kept by the reference's sentence but "
                           "zeroed by its example's caption: which one the server does is not known "
                           "(--zero unlisted-records makes them explicit)")
    return reasons


def _journal_key(prepared: PreparedInventory, options: FullOptions) -> str:
    """A full update's chunks are journaled under the input and the chosen semantics."""
    return hashlib.sha256(f"full:{options.zero}:{prepared.input_hash()}".encode()).hexdigest()


def check_body_size(plan: pd.DataFrame) -> None:
    """`--via full-endpoint` is one request: refused when its body would pass the limit."""
    chunks = plan_chunks(plan, batch_size=len(plan) or 1, max_bytes=MAX_BODY_BYTES)
    if len(chunks) > 1:
        raise ConfigError(f"--via full-endpoint: the {len(plan)} records make a body over "
                          f"{MAX_BODY_BYTES >> 20} MiB, more than one request may carry; send it the default way "
                          "(chunked explicit partial updates, without --via full-endpoint); nothing was sent")
