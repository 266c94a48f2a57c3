"""Send this process's own output (file descriptors 1 and 2) to a log file, keeping a
stream on the terminal. TensorFlow writes its C++ start-up lines straight to descriptor 2,
before and outside Python's logging, so only a redirect at that level keeps them off the
terminal (``TF_CPP_MIN_LOG_LEVEL=3`` still lets some through). Used by the cron wrapper
(``pipeline.cli.cron``) and by a terminal run (``pipeline.tasks.console``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Iterator, TextIO


def send_output_to(log: Path, descriptors: tuple[int, ...] = (1, 2)) -> TextIO:
    """Append ``descriptors`` to ``log`` (created with its folder) from now on, after a
    line naming this process and its command line; return a line-buffered stream on the
    original standard error."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)  # fails before any dup
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stdout.flush()
    sys.stderr.flush()
    for descriptor in descriptors:
        os.dup2(fd, descriptor)
    os.close(fd)
    started = dt.datetime.now().isoformat(timespec="seconds")
    os.write(descriptors[-1], f"--- {started} pid {os.getpid()}: "
                              f"{' '.join(sys.argv)}\n".encode("utf-8", "replace"))
    return terminal


@contextlib.contextmanager
def stderr_sent_to(log: Path) -> Iterator[TextIO]:
    """Within the block, descriptor 2 goes to ``log`` as :func:`send_output_to` sends it and
    ``sys.stderr`` (Python's own messages) to the terminal; both are restored after. When
    ``log`` cannot be written, nothing is redirected."""
    try:
        terminal = send_output_to(log, (2,))
    except OSError:
        terminal = None
    if terminal is None:
        yield sys.stderr
        return
    try:
        with contextlib.redirect_stderr(terminal):
            yield terminal
    finally:
        terminal.flush()
        os.dup2(terminal.fileno(), 2)  # the terminal's descriptor back as 2
        terminal.close()
