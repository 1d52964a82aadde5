"""Each instrument's exchange calendar: which day is the next session, and how many sessions
a day lies after the last bar.

Files default to the New York Stock Exchange (``XNYS``); the generated instruments have a bar
on every weekday, exchange holidays included, so theirs is ``24/5`` (every weekday). The
deployment names others in ``$RL_ASSETS_CALENDARS`` (``SPY=XNYS,DAX=XETR,BTC=24/7``), any
calendar of the ``exchange_calendars`` library (maintained, with each exchange's holidays
and early closes; ``python -c "import exchange_calendars as x; print(x.get_calendar_names())"``).
"""

import functools
import os

import pandas as pd

CALENDARS_ENV_VAR = "RL_ASSETS_CALENDARS"
FILE_CALENDAR = "XNYS"
GENERATED_CALENDAR = "24/5"


class CalendarError(ValueError):
    """An unknown calendar name, or a malformed $RL_ASSETS_CALENDARS; says the fix."""


def configured() -> dict[str, str]:
    """$RL_ASSETS_CALENDARS as {instrument: calendar name}."""
    raw = os.environ.get(CALENDARS_ENV_VAR, "").strip()
    out = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, name = item.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise CalendarError(
                f"${CALENDARS_ENV_VAR} item {item!r} is not INSTRUMENT=CALENDAR; write e.g. "
                f"{CALENDARS_ENV_VAR}=SPY=XNYS,DAX=XETR"
            )
        out[key.strip()] = name.strip()
    return out


def calendar_name(instrument: str, generated: bool) -> str:
    return configured().get(instrument) or (GENERATED_CALENDAR if generated else FILE_CALENDAR)


@functools.lru_cache(maxsize=32)
def _calendar(name: str, start_year: int):
    import exchange_calendars as xc

    try:
        return xc.get_calendar(name, start=pd.Timestamp(f"{start_year}-01-01"))
    except xc.errors.InvalidCalendarName:
        raise CalendarError(
            f"unknown exchange calendar {name!r}; use a name from exchange_calendars (XNYS, "
            f"XLON, XETR, 24/5, ...) in ${CALENDARS_ENV_VAR}"
        ) from None


def calendar(name: str, since: pd.Timestamp):
    """The calendar ``name`` covering ``since`` onwards (to a year ahead of today)."""
    return _calendar(name, min(pd.Timestamp(since).year, pd.Timestamp.now().year - 1))


def next_session(name: str, last: pd.Timestamp) -> pd.Timestamp:
    """The first session after the day ``last`` (exchange holidays and weekends skipped)."""
    last = pd.Timestamp(last).normalize()
    return calendar(name, last).date_to_session(last + pd.Timedelta(days=1), direction="next")


def session_open_utc(name: str, session: pd.Timestamp) -> pd.Timestamp:
    return calendar(name, session).session_open(session)


def sessions_after(name: str, last: pd.Timestamp, as_of: pd.Timestamp) -> int:
    """Sessions after the day ``last`` up to and including the day ``as_of``."""
    last, as_of = pd.Timestamp(last).normalize(), pd.Timestamp(as_of).normalize()
    if as_of <= last:
        return 0
    cal = calendar(name, last)
    end = min(as_of, cal.last_session)
    counted = len(cal.sessions_in_range(last + pd.Timedelta(days=1), end)) if end > last else 0
    # Beyond the calendar's horizon (a year ahead): weekdays, which is all that is known.
    beyond = len(pd.bdate_range(end + pd.Timedelta(days=1), as_of)) if as_of > end else 0
    return counted + beyond
