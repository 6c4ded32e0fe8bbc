"""The embedded AWS emulator: moto, corrected where it differs from AWS, with a world model
in time. One package serves `abfsm demo`, the examples and the tests:

- `fixes`: corrections to moto's behaviour (always applied);
- `world`: instances that boot, wait in lifecycle hooks, pass health checks and drain
  (off unless a `World` is activated);
- `server`: moto's server with both, in a thread (`serve()`) or a process
  (`python -m abfsm.emulator.server PORT`), with control endpoints for tests.

Needs moto (`pip install 'abfsm[demo]'`); nothing in the engine imports this package.
"""

from __future__ import annotations
