"""Run a ``luigi`` command the way cron wants it: silent when it succeeds, one line when
it fails, and the exit code of ``[retcode]`` either way.

    spam-ham-cron [--stderr-log FILE] --module pipeline.tasks BatchScore --date YYYY-MM-DD ...

Everything after the options is ``luigi``'s own command line (the pid lock, the
scheduler, ``--logging-conf-file`` work as with ``luigi``). Before TensorFlow can load,
the process's standard output and error (file descriptors 1 and 2) are sent to
``--stderr-log`` (default ``outputs/logs/stderr.log``, appended): TensorFlow's C++
start-up lines, written before its logging is set up, cannot be silenced otherwise
(``TF_CPP_MIN_LOG_LEVEL=3`` still leaves six of them). Luigi's own log goes where
``--logging-conf-file`` sends it (``logging.conf``: rotating files under
``outputs/logs/``). cron mails what a job prints, so it mails only failures, as

    spam-ham-cron: exit 20 (missing data): MessagesLocation(...) does not exist; logs in outputs/logs/
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.cli import exit_codes_epilog
from pipeline.process_output import send_output_to

EXIT_USAGE = 2
# [retcode] in luigi.cfg: what each exit code means (README, Operations, Exit codes)
MEANINGS = {10: "already running", 20: "missing data", 25: "not run", 30: "a task failed",
            35: "scheduling error", 40: "unhandled exception in luigi"}
EXIT_CODES = {
    0: "everything asked for is complete (nothing is printed)",
    1: "an unexpected error (a Python traceback, in --stderr-log once it is open)",
    EXIT_USAGE: "usage error: no luigi command line, or luigi could not read it (unknown "
                "option, task or --module; luigi's message is in --stderr-log)",
    **{code: f"{meaning} ([retcode] in luigi.cfg)" for code, meaning in MEANINGS.items()},
}
DEFAULT_STDERR_LOG = "outputs/logs/stderr.log"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spam-ham-cron", description=__doc__, allow_abbrev=False,
        epilog=exit_codes_epilog(EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="spam-ham-cron [--stderr-log FILE] LUIGI_ARGUMENTS...")
    parser.add_argument("--stderr-log", default=DEFAULT_STDERR_LOG, metavar="FILE",
                        help=f"where standard output and error go, appended (default "
                             f"{DEFAULT_STDERR_LOG})")
    return parser


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    return build_parser().parse_known_args(argv)


class _Reasons:
    """What went wrong, in the words of the tasks (Luigi's events), first one kept."""

    def __init__(self):
        self.lines: list[str] = []

    def listen(self) -> None:
        import luigi

        luigi.Task.event_handler(luigi.Event.FAILURE)(self._failed)
        luigi.Task.event_handler(luigi.Event.BROKEN_TASK)(self._failed)
        luigi.Task.event_handler(luigi.Event.DEPENDENCY_MISSING)(self._missing)

    def _failed(self, task, error) -> None:
        message = str(error).strip().splitlines()
        self.lines.append(f"{task}: {type(error).__name__}: {message[0] if message else ''}")

    def _missing(self, task) -> None:
        self.lines.append(f"{task} does not exist")

    def first(self) -> str:
        return self.lines[0] if self.lines else ""


def run(luigi_argv: list[str]) -> tuple[int, str]:
    """Run ``luigi`` with ``luigi_argv``; return its exit code and the first reason."""
    from luigi.retcodes import run_with_retcodes

    reasons = _Reasons()
    reasons.listen()
    try:
        run_with_retcodes(luigi_argv)
        code = 0
    except SystemExit as exit_:  # luigi's argparse errors exit 2 too
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as error:  # noqa: BLE001 - raised while luigi reads its command line
        # (an unknown task or --module), before run_with_retcodes maps errors to [retcode]
        message = str(error).strip().splitlines()
        return EXIT_USAGE, f"{type(error).__name__}: {message[0] if message else ''}"
    return code, reasons.first()


def main(argv: list[str] | None = None) -> int:
    options, luigi_argv = _parse(sys.argv[1:] if argv is None else argv)
    if not luigi_argv:
        print("spam-ham-cron: give a luigi command line, e.g. --module pipeline.tasks "
              "BatchScore --date YYYY-MM-DD", file=sys.stderr)
        return EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    log = Path(options.stderr_log)
    original_stderr = send_output_to(log)
    code, reason = run(luigi_argv)
    if code:
        meaning = "usage error" if code == EXIT_USAGE else MEANINGS.get(code, "failed")
        detail = f": {reason}" if reason else ""
        original_stderr.write(f"spam-ham-cron: exit {code} ({meaning}){detail}; "
                              f"logs in {log.parent}/\n")
    original_stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
