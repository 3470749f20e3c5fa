"""What a library logged while it failed: torch and torch_tensorrt often log the real cause and raise
something vaguer (``check the warnings above``, a bare ``AssertionError``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from trtshim.errors import first_line


class Records(logging.Handler):
    """Keeps the text of every record at ``level`` or above (an attached exception's text if any)."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = record.exc_info[1] if record.exc_info else None
        try:
            text = f"{type(cause).__name__}: {cause}" if cause is not None else record.getMessage()
        except Exception:  # torch 2.10 logs a message whose %-arguments do not match: never fail
            text = str(record.msg)
        self.messages.append(text)

    def last(self) -> str | None:
        """The first line of the last non-empty record."""
        for message in reversed(self.messages):
            if message.strip():
                return first_line(message)
        return None


@contextlib.contextmanager
def captured(*loggers: str, level: int = logging.WARNING) -> Iterator[Records]:
    """Records what ``loggers`` emit inside the block (handlers added, and removed on exit)."""
    records = Records(level)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addHandler(records)
    try:
        yield records
    finally:
        for logger in targets:
            logger.removeHandler(records)
