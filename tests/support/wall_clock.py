"""Run this Python process as if the wall clock were moved by ``BDR_TEST_CLOCK_OFFSET`` seconds.

``TEST_CLOCK=HH:MM scripts/test.sh`` sets the offset once and installs a ``.pth`` hook that runs
this file at the start of every Python process of the test run (pytest, the agents it starts,
the agent behind sshd, the Celery worker), so they all agree on the moved time and it keeps
ticking. time-machine moves ``time.time``, ``datetime.now`` and friends; monotonic clocks and
sleeps stay real, so timeouts behave as usual.
"""

import os
import time

import time_machine

_offset = float(os.environ["BDR_TEST_CLOCK_OFFSET"])
time_machine.travel(time.time() + _offset, tick=True).start()
