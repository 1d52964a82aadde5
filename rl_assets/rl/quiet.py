"""Drop Ray RLlib's known, harmless log notices by message; every other warning still shows.

RLlib reports these through Python ``logging`` (not ``warnings``), once per process, on
every run of this project, and none of them asks the user to do anything:

- ``RLModule(config=...)`` deprecation: RLlib's own ``RLModule.__init__`` builds the
  deprecated ``RLModuleConfig`` itself (Ray 2.60, ``rl_module.py``), so every module
  RLlib builds (``build_algo()``) or restores (``RLModule.from_checkpoint`` in the gate
  and the report) triggers it, whatever the caller passes.
- "You are running PPO on the new API stack!": printed whenever the new stack is on,
  even when chosen explicitly (``algorithm_config.py``).
- "Install gputil for GPU system monitoring.": Tune's usage monitor, started by every
  Algorithm; this project trains on CPU.

And one ``warnings`` warning, gymnasium's: "Overriding environment
rllib-single-agent-env-v0 already in registry". RLlib's env runner registers its env
under that one id every time it builds an env, so every algorithm after the first in a
process (``make demo``'s second instrument) triggers it. Only that id is filtered; a user's
own env id registered twice still warns.

Ray-free and Dagster-free: importing this module imports neither. Call
:func:`quiet_rllib` once before RLlib runs; calling it again changes nothing.
"""

import logging
import re
import warnings

# (logger name, pattern searched in the formatted message). One line per known notice;
# a message that does not match is logged as usual.
KNOWN_NOTICES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ray._common.deprecation",
        re.compile(r"`RLModule\(config=\[RLModuleConfig object\]\)` has been deprecated"),
    ),
    (
        "ray.rllib.algorithms.algorithm_config",
        re.compile(r"You are running \w+ on the new API stack! This is the new default"),
    ),
    ("ray.tune.utils.util", re.compile(r"^Install gputil for GPU system monitoring\.$")),
)
# warnings.filterwarnings matches the message from its start; gymnasium colours it.
RLLIB_ENV_REREGISTERED = r".*Overriding environment rllib-single-agent-env-v0 already in registry"


class _DropKnownNotice(logging.Filter):
    """Drops records whose message matches ``pattern``; passes everything else."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def quiet_rllib() -> None:
    """Attach one message filter to each logger that emits a known notice (idempotent).

    Filters sit on the emitting loggers themselves, so they hold however Ray configures
    its handlers later, and no other logger or message is affected.
    """
    warnings.filterwarnings("ignore", message=RLLIB_ENV_REREGISTERED, category=UserWarning)
    for name, pattern in KNOWN_NOTICES:
        logger = logging.getLogger(name)
        if not any(
            isinstance(f, _DropKnownNotice) and f.pattern is pattern for f in logger.filters
        ):
            logger.addFilter(_DropKnownNotice(pattern))
