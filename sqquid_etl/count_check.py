"""The count check: the API's `/count` for a run's windows against the distinct keys received."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .client import SqquidClient
from .definitions import StreamDefinition
from .fetch import count_records


@dataclass(frozen=True)
class CountCheck:
    expected: int
    received: int
    api_counts: dict  # partition -> the API's count for its window, as last asked

    @property
    def ok(self) -> bool:
        return self.expected == self.received


def check_count(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: dict[str | None, datetime | None],
    planned: dict[str | None, int],
    received: int,
) -> CountCheck:
    """The API's count for the windows. The counts the fetch asked to plan its pages (`planned`,
    before the listing was read) are used where there are some; when they disagree with what was
    received, the count is asked again now, and a number received between the two (records added
    while paging) counts as agreeing."""
    before = {p: planned[p] if p in planned else count_records(stream, client, windows[p], p) for p in windows}
    if sum(before.values()) == received:
        return CountCheck(received, received, before)
    now = {p: count_records(stream, client, windows[p], p) for p in windows}
    if sum(before.values()) <= received <= sum(now.values()):
        return CountCheck(received, received, now)
    return CountCheck(sum(now.values()), received, now)
