"""Times as the ledger stores them: fixed-width ISO-8601 UTC text, and back.

``iso`` runs once per event written (its timestamp), so it keeps the text of
the minute it last wrote: within that minute only the seconds and
microseconds are written, the very characters ``isoformat`` would write.
"""

from __future__ import annotations

import datetime

__all__ = ["iso", "parse_time"]

_UTC = datetime.timezone.utc

#: (start, end, ISO text up to the seconds) of the minute ``iso`` last wrote a time of.
_minute: tuple[datetime.datetime, datetime.datetime, str] = (
    datetime.datetime.max.replace(tzinfo=_UTC), datetime.datetime.min.replace(tzinfo=_UTC), "")
_SECONDS = tuple(f"{s:02d}." for s in range(60))
_ONE_MINUTE = datetime.timedelta(minutes=1)


def iso(value: datetime.datetime) -> str:
    """A datetime as a fixed-width ISO-8601 UTC string (naive datetimes are taken as UTC)."""
    if value.tzinfo is _UTC and type(value) is datetime.datetime:  # what utcnow() makes: nothing to convert
        start, end, head = _minute
        if start <= value < end:
            # isoformat costs about 1 us per event (the offset is formatted each time); within the
            # minute of the previous call only the seconds change: the same characters, a third of the time
            return head + _SECONDS[value.second] + str(value.microsecond + 1_000_000)[1:] + "+00:00"
        return _iso_of_new_minute(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    elif value.utcoffset():
        value = value.astimezone(_UTC)
    return value.isoformat(timespec="microseconds")


def _iso_of_new_minute(value: datetime.datetime) -> str:
    """``value.isoformat`` (microseconds), and its minute kept for the next ``iso`` calls."""
    global _minute
    text = value.isoformat(timespec="microseconds")
    start = value.replace(second=0, microsecond=0)
    if start.year < 9999:  # the last minute of year 9999 has no end to compare with
        _minute = (start, start + _ONE_MINUTE, text[:17])
    return text


def parse_time(text: str) -> datetime.datetime:
    """The datetime of an ``iso()`` string."""
    return datetime.datetime.fromisoformat(text)
