"""The `durabatch` command line, by job: the batch commands (batch.py: submit, status, list, cancel,
redispatch), results (results.py, through the same reader as `BatchHandle.results`), the commands
that run parts of the stack (stack.py: worker, emulator, hooks, dev, db migrate), the plumbing they
share (common.py: settings, clients, exit codes, one-line errors) and terminal output
(console.py, format.py)."""

from __future__ import annotations

from durabatch.cli.batch import app, main
from durabatch.cli.common import EXIT_USAGE

__all__ = ["EXIT_USAGE", "app", "main"]
