"""The count check: the API's `/count` for a run's windows against the distinct keys received."""

from __future__ import annotations

from dataclasses import dataclass

from .client import SqquidClient
from .definitions import StreamDefinition
from .fetch import count_window
from .listing import Window, counted


@dataclass(frozen=True)
class CountCheck:
    expected: int
    received: int
    api_counts: dict  # Window -> the API's count for it, as last asked

    @property
    def ok(self) -> bool:
        return self.expected == self.received


def check_count(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: list[Window],
    planned: dict[Window, int],
    received: int,
) -> CountCheck | None:
    """The API's count for the windows (None: its /count does not take their params). The counts
    the fetch asked to plan its pages (`planned`, before the listing was read) are used where there
    are some; when they disagree with what was received, the count is asked again now, and a number
    received between the two (records added while paging) counts as agreeing."""
    if not all(counted(stream, w) for w in windows):
        return None
    before = {w: planned[w] if w in planned else count_window(stream, client, w) for w in windows}
    if sum(before.values()) == received:
        return CountCheck(received, received, before)
    now = {w: count_window(stream, client, w) for w in windows}
    if sum(before.values()) <= received <= sum(now.values()):
        return CountCheck(received, received, now)
    return CountCheck(sum(now.values()), received, now)
