"""What a run shows in a terminal.

``luigi --module pipeline.tasks ...`` prints a line as each task starts and one as it
ends, with what it did (training adds its first and every fifth epoch), Luigi's warnings
and errors (and its execution summary when the run did not fully succeed), and at the end
what the task asked for made and where: the scores file and its rows, the version
published or live. Everything else goes to files under ``<outputs_root>/logs/``:
Luigi's scheduling lines and the pipeline's own to ``pipeline.log`` (rotated, as under
cron), and what the process writes to its standard error, TensorFlow's C++ start-up lines
among them, to ``stderr.log``.

``--log-level INFO`` adds Luigi's scheduling lines to the terminal (luigi.cfg's
``[core] log_level`` is ``WARNING``); ``--log-level DEBUG`` shows everything there,
TensorFlow's lines included. Where logging is set up by anyone else (``--logging-conf-file``,
as the cron wrapper's logging.conf; ``[core] no_configure_logging``; pytest; a program that
calls ``luigi.build`` after configuring logging) nothing is changed: the lines go to the
``pipeline`` logger, wherever that configuration sends them.
"""
from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import time
from pathlib import Path

import luigi

from pipeline.process_output import send_output_to
from pipeline.settings import outputs_root

LOGGER = logging.getLogger("pipeline")
LOG_FILE = "pipeline.log"
STDERR_FILE = "stderr.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"  # logging.conf's
TERMINAL_FORMAT = "%(asctime)s %(message)s"
LOG_FILE_BYTES, LOG_FILES_KEPT = 10_000_000, 10


class _Run:
    """What this process has seen of the run (Luigi's events). Worker processes (``--workers
    N``) are forked after scheduling, so each starts with what scheduling saw."""

    def __init__(self):
        self.set_up = False
        self.began = dt.datetime.now(dt.timezone.utc)  # the command's start (import time)
        self.started: dict[str, float] = {}
        self.dependencies: set[str] = set()
        self.requested: set[str] = set()  # checked before any task ran, and no dependency

    def scheduling(self, task: luigi.Task) -> None:
        """``task`` was checked while scheduling (dynamic dependencies come later)."""
        if not self.started:
            self.requested.add(task.task_id)

    def asked_for(self, task: luigi.Task) -> bool:
        """Whether ``task`` is what the command asked for: the ``luigi`` command line's
        task, or else (``luigi.build``) one checked before any task ran that no other
        requires."""
        from luigi.cmdline_parser import CmdlineParser

        command_line = CmdlineParser.get_instance()
        if command_line is not None:
            return task.task_id == command_line.get_task_obj().task_id
        return task.task_id in self.requested and task.task_id not in self.dependencies


_run = _Run()


def _set_up_terminal() -> None:
    """At the first event, where Luigi configured logging itself (its default handler on
    ``luigi-interface``) and nothing configured the root logger: the terminal shows the
    pipeline's lines and Luigi's at its level; the rest goes to the log files."""
    if _run.set_up:
        return
    _run.set_up = True
    luigi_logger = logging.getLogger("luigi-interface")
    root = logging.getLogger()
    if root.handlers or not luigi_logger.handlers:
        return
    level = luigi_logger.level or logging.DEBUG  # luigi sets it from --log-level
    logs = outputs_root() / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        log_file = logging.handlers.RotatingFileHandler(
            logs / LOG_FILE, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILES_KEPT,
            encoding="utf-8")
        terminal = None if level <= logging.DEBUG else send_output_to(logs / STDERR_FILE, (2,))
    except OSError as error:
        LOGGER.addHandler(_terminal_handler(None, level))
        LOGGER.setLevel(min(level, logging.INFO))
        LOGGER.warning("cannot write logs under %s (%s): everything stays on the terminal",
                       logs, error)
        return
    log_file.setFormatter(logging.Formatter(LOG_FORMAT))
    log_file.setLevel(min(level, logging.INFO))
    root.addHandler(log_file)  # also keeps libraries from adding their own (basicConfig)
    root.setLevel(min(level, logging.INFO))
    for handler in luigi_logger.handlers:  # luigi's own, at --log-level
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(_ExplainedErrorsInOneLine(handler.formatter))
            if terminal is not None:
                handler.setStream(terminal)
            if handler.level > logging.INFO:  # and its summary, unless all went well
                handler.addFilter(_AtLeastOrUnhappySummary(handler.level))
                handler.setLevel(logging.INFO)
    luigi_logger.setLevel(min(level, logging.INFO))  # its INFO lines reach the log file
    LOGGER.addHandler(_terminal_handler(terminal, level))
    LOGGER.setLevel(min(level, logging.INFO))


def _terminal_handler(stream, level: int) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TERMINAL_FORMAT, "%H:%M:%S"))
    handler.setLevel(level if level > logging.WARNING else logging.INFO)
    handler.addFilter(lambda record: getattr(record, "terminal", True))
    return handler


class _AtLeastOrUnhappySummary(logging.Filter):
    """Luigi's lines at ``level`` and above, and its execution summary when the run did not
    fully succeed: it is Luigi's only word on tasks left pending, another worker's
    running task or a scheduler that did not grant a run (exit codes 10 and 25)."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        message = record.getMessage()
        return "Luigi Execution Summary" in message and "This progress looks :)" not in message


class _ExplainedErrorsInOneLine(logging.Formatter):
    """Luigi's terminal lines without the traceback of the pipeline's own errors (types
    defined under ``pipeline``, raised with a message that says what to do); the log file
    keeps every traceback, and other errors keep theirs on the terminal too."""

    def __init__(self, luigis: logging.Formatter | None):
        super().__init__(luigis._fmt if luigis else None)

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and type(error).__module__.startswith("pipeline."):
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None,
                                            "exc_text": None})
        return super().format(record)


def name_of(task: luigi.Task) -> str:
    """The task's family, with its date or shard when it has one."""
    details = [str(task.date)] if hasattr(task, "date") else []
    if hasattr(task, "shard") and hasattr(task, "shards"):
        details.append(f"shard {task.shard + 1}/{task.shards}")
    return task.task_family + (f" ({', '.join(details)})" if details else "")


def _took(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s"


def _produced(task: luigi.Task) -> list[str]:
    produced = getattr(task, "produced", None)
    return produced() if callable(produced) else []


@luigi.Task.event_handler(luigi.Event.DEPENDENCY_DISCOVERED)
def _discovered(task: luigi.Task, dependency: luigi.Task) -> None:
    _set_up_terminal()
    _run.scheduling(task)
    _run.dependencies.add(dependency.task_id)


@luigi.Task.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _present(task: luigi.Task) -> None:
    _set_up_terminal()
    _run.scheduling(task)
    if _run.asked_for(task):  # and complete already
        lines = _produced(task)
        LOGGER.info("%s is complete already: nothing to run%s", name_of(task),
                    "" if lines else ".")
        for line in lines:
            LOGGER.info("  %s", line)


@luigi.Task.event_handler(luigi.Event.DEPENDENCY_MISSING)
def _missing(task: luigi.Task) -> None:
    _set_up_terminal()
    _run.scheduling(task)


@luigi.Task.event_handler(luigi.Event.START)
def _started(task: luigi.Task) -> None:
    _set_up_terminal()
    _run.started[task.task_id] = time.monotonic()
    if not isinstance(task, luigi.WrapperTask):
        LOGGER.info("%s started", name_of(task))


@luigi.Task.event_handler(luigi.Event.SUCCESS)
def _succeeded(task: luigi.Task) -> None:
    took = time.monotonic() - _run.started.get(task.task_id, time.monotonic())
    if not isinstance(task, luigi.WrapperTask):
        what = getattr(task, "last_status", "")
        LOGGER.info("%s done in %s%s", name_of(task), _took(took), f": {what}" if what else "")
    if _run.asked_for(task):  # say what it made
        for line in _produced(task):
            LOGGER.info("%s", line)


@luigi.Task.event_handler(luigi.Event.FAILURE)
def _failed(task: luigi.Task, error: BaseException) -> None:
    took = time.monotonic() - _run.started.get(task.task_id, time.monotonic())
    first = (str(error).strip().splitlines() or [""])[0]
    LOGGER.error("%s failed after %s: %s: %s", name_of(task), _took(took),
                 type(error).__name__, first)


def began() -> dt.datetime:
    """When this command started (UTC), for what it published since (the audit log)."""
    return _run.began


def relative(path: Path | str) -> str:
    """``path`` relative to the working directory when it is under it (shorter lines)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
