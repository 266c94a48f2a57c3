"""The console scripts: ``spam-ham-cron``, ``spam-ham-versions``, ``spam-ham-client`` and
``spam-ham-smoke-test``. Each parses its arguments and calls the packages below.

Top of the import graph with ``pipeline.tasks``: nothing imports this package.
"""
from __future__ import annotations

import textwrap


def exit_codes_epilog(codes: dict[int, str]) -> str:
    """The ``exit codes:`` section that ends a script's ``--help``: one code a line, its
    meaning wrapped beside it (an argparse epilog, shown as written with
    ``RawDescriptionHelpFormatter``)."""
    lines = ["exit codes:"]
    for code, meaning in codes.items():
        lines += textwrap.wrap(meaning, width=80, initial_indent=f"  {code:<4}",
                               subsequent_indent=" " * 6)
    return "\n".join(lines)
