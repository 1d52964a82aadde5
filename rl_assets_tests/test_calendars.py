"""Sessions from each instrument's exchange calendar: holidays are skipped when naming the next
session and are not counted as staleness."""

import pandas as pd
import pytest

from rl_assets import calendars
from rl_assets.assets.signal import instrument_calendar


def day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def test_an_exchange_holiday_is_skipped_when_naming_the_next_session():
    # Thursday 2025-07-03; Friday 2025-07-04 is Independence Day (NYSE closed).
    assert calendars.next_session("XNYS", day("2025-07-03")) == day("2025-07-07")
    assert calendars.session_open_utc("XNYS", day("2025-07-07")) == pd.Timestamp(
        "2025-07-07 13:30", tz="UTC"
    )
    # The generator's weekday calendar has a bar on the holiday.
    assert calendars.next_session("24/5", day("2025-07-03")) == day("2025-07-04")
    # A Friday's next session is the Monday; Christmas on a Thursday is skipped.
    assert calendars.next_session("XNYS", day("2025-07-11")) == day("2025-07-14")
    assert calendars.next_session("XNYS", day("2025-12-24")) == day("2025-12-26")


def test_staleness_counts_sessions_of_the_calendar():
    assert calendars.sessions_after("XNYS", day("2025-07-03"), day("2025-07-06")) == 0
    assert calendars.sessions_after("XNYS", day("2025-07-03"), day("2025-07-07")) == 1
    assert calendars.sessions_after("24/5", day("2025-07-03"), day("2025-07-07")) == 2
    assert calendars.sessions_after("XNYS", day("2025-07-03"), day("2025-07-03")) == 0
    # Beyond the calendar's horizon (a year ahead) weekdays are counted.
    far = calendars.sessions_after("XNYS", day("2025-07-03"), day("2031-01-06"))
    assert far > 1300


def test_each_instrument_has_a_calendar_and_the_deployment_names_others(monkeypatch):
    monkeypatch.delenv(calendars.CALENDARS_ENV_VAR, raising=False)
    assert instrument_calendar("SYN_MOMENTUM") == "24/5"  # generated: bars on holidays
    assert calendars.calendar_name("SPY", generated=False) == "XNYS"
    monkeypatch.setenv(calendars.CALENDARS_ENV_VAR, "SPY=XLON, BTC=24/7")
    assert calendars.configured() == {"SPY": "XLON", "BTC": "24/7"}
    assert calendars.calendar_name("SPY", generated=False) == "XLON"
    monkeypatch.setenv(calendars.CALENDARS_ENV_VAR, "SPY")
    with pytest.raises(calendars.CalendarError, match="'SPY' is not INSTRUMENT=CALENDAR"):
        calendars.configured()
    with pytest.raises(calendars.CalendarError, match="unknown exchange calendar 'NOPE'"):
        calendars.next_session("NOPE", day("2025-07-03"))
