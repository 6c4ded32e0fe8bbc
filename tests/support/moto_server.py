"""The moto_server of the end-to-end tests: the embedded emulator's server in a process.

    python tests/support/moto_server.py PORT

Everything (the corrections, the call record, the world model's control endpoint) is
abfsm.emulator.server's; see its docstring for the endpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

if __name__ == "__main__":
    from abfsm.emulator.server import main

    main()
