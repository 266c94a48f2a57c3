"""What every task of the pipeline shares: a status line and progress bar that work with
and without a scheduler, output folders named by a fingerprint of the task and all it
depends on (as gokart names its outputs), and a date parameter whose default is the day
the task is made."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import luigi
from luigi.task import flatten, getpaths

from pipeline.settings import outputs_root


def json_dump(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


class TodayParameter(luigi.DateParameter):
    """A date whose default is the day the task is instantiated, not the day its module
    was imported: a worker or scheduler process started yesterday schedules today.

    Luigi reads a parameter's default from its ``_default`` attribute; there is no
    public hook for a default computed per task (tests/test_tasks.py fails loudly if an
    upgrade changes that)."""

    @property
    def _default(self) -> dt.date:
        return dt.date.today()

    @_default.setter
    def _default(self, value) -> None:  # set by Parameter.__init__; today always wins
        pass


class StatusReporting(luigi.Task):
    """A task that reports what it is doing on the dashboard's status line."""

    last_status = ""

    def status(self, message: str) -> None:
        """Set the status line (there is none when ``run()`` is called outside a worker);
        the last one is what the terminal shows when the task ends (``console``)."""
        self.last_status = message
        if self.set_status_message:
            self.set_status_message(message)

    def progress(self, percent: int) -> None:
        """Set the progress bar (there is none outside a worker)."""
        if self.set_progress_percentage:
            self.set_progress_percentage(percent)

    def produced(self) -> list[str]:
        """What this task's complete output holds and where, in a line or two; printed
        when a run asked for this task (``console``). Nothing by default."""
        return []


class PipelineTask(StatusReporting):
    """A task whose output folder carries a fingerprint of itself and all it depends on."""

    output_kind: str = ""

    def fingerprint(self) -> str:
        upstream = sorted(t.fingerprint() for t in flatten(self.requires())
                          if isinstance(t, PipelineTask))
        own = self.to_str_params(only_significant=True, only_public=True)
        payload = json.dumps([self.task_family, own, upstream, *self.rules()], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def rules(self) -> list[str]:
        """Fingerprints of code rules that decide this task's output besides its parameters
        and inputs (none for most tasks)."""
        return []

    def output(self):
        return luigi.LocalTarget(str(outputs_root() / self.output_kind / self.fingerprint()))

    def output_folder(self) -> Path:
        return Path(self.output().path)

    def input_folder(self, name: str | None = None) -> Path:
        # getpaths() is what Task.input() returns; BatchScore's --input parameter shadows it.
        targets = getpaths(self.requires())
        return Path((targets[name] if name else targets).path)
