"""The console scripts: ``spam-ham-cron``, ``spam-ham-versions``, ``spam-ham-client`` and
``spam-ham-smoke-test``. Each parses its arguments and calls the packages below.

Top of the import graph with ``pipeline.tasks``: nothing imports this package.
"""
