"""S3 objects with conditional writes: what the lock and the run records need."""

from __future__ import annotations

from typing import Any

from abfsm.aws._call import call, error_code
from abfsm.errors import AwsError
from abfsm.lock import Stored


class S3Objects:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, bucket: str, key: str) -> Stored | None:
        try:
            resp = call(self._client, "s3", "GetObject", Bucket=bucket, Key=key)
        except AwsError as exc:
            if exc.__cause__ is not None and error_code(exc.__cause__) in ("NoSuchKey", "404"):
                return None
            raise
        body = resp["Body"].read()
        return Stored(body, resp["ETag"].strip('"'), resp["LastModified"])

    def put(self, bucket: str, key: str, body: bytes, *, if_none_match: bool = False,
            if_match: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body,
                                  "ContentType": "application/json"}
        if if_none_match:
            params["IfNoneMatch"] = "*"
        if if_match:
            params["IfMatch"] = f'"{if_match}"'
        resp = call(self._client, "s3", "PutObject", mutating=True,
                    log_params={"Bucket": bucket, "Key": key,
                                **({"IfNoneMatch": "*"} if if_none_match else {}),
                                **({"IfMatch": if_match} if if_match else {})},
                    conditional=bool(if_none_match or if_match), **params)
        return str(resp["ETag"]).strip('"')

    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> None:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if if_match:
            params["IfMatch"] = f'"{if_match}"'
        # conditional: a lock that is gone or replaced raises PreconditionFailed.
        call(self._client, "s3", "DeleteObject", mutating=True,
             log_params={"Bucket": bucket, "Key": key, **({"IfMatch": if_match} if if_match else {})},
             conditional=bool(if_match), **params)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        token: dict[str, Any] = {}
        while True:
            resp = call(self._client, "s3", "ListObjectsV2", Bucket=bucket, Prefix=prefix, **token)
            keys.extend(o["Key"] for o in resp.get("Contents", []))
            if not resp.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": resp["NextContinuationToken"]}
