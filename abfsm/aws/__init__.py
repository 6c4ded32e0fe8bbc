"""Thin boto3 adapters: one method per AWS intent, small frozen dataclasses out, the tool's
own errors instead of botocore's. boto3 is imported only when a client is first built."""

from abfsm.aws.session import Services, connect

__all__ = ["Services", "connect"]
