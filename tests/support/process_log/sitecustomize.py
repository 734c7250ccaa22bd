"""Loaded by every Python process started with this folder on PYTHONPATH (see
tests/support/counting.py): appends the process's command line to $BDR_TEST_PROCESS_LOG."""

import os
import sys

_log = os.environ.get("BDR_TEST_PROCESS_LOG")
if _log:
    with open(_log, "a") as _f:
        _f.write(" ".join(sys.orig_argv) + "\n")
