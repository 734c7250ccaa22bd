"""``python -m agent.receiver DEST``: the bare-metal target's forced command.

Kept at this path because targets' authorized_keys lines name it; the code is
``agent.restore.receiver`` (standard library only).
"""

import sys

from agent.restore.receiver import main

if __name__ == "__main__":
    sys.exit(main())
