"""An example third-party abfsm action package (see README "Writing your own machine").

Put the directory holding this package on PYTHONPATH (or install it) and name the action
in a spec as `abfsm_example_checks:write_marker`, as examples/specs/third-party-action.yaml
does.
"""

from abfsm_example_checks.marker import write_marker

__all__ = ["write_marker"]
