"""abfsm: blue/green (A/B) deployments of AWS Auto Scaling Groups as an explicit state machine."""

__version__ = "0.1.0"

__all__ = ["__version__"]
