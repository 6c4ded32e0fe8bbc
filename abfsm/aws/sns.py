"""SNS topics: publish one notification with filterable message attributes."""

from __future__ import annotations

from typing import Any

from abfsm.aws._call import call


class Topics:
    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, topic_arn: str, subject: str, message: str,
                attributes: dict[str, str]) -> str:
        """Publish `message` (with String attributes); returns the MessageId."""
        resp = call(self._client, "sns", "Publish", mutating=True,
                    log_params={"TopicArn": topic_arn, "Subject": subject},
                    TopicArn=topic_arn, Subject=subject, Message=message,
                    MessageAttributes={k: {"DataType": "String", "StringValue": v}
                                       for k, v in attributes.items()})
        return str(resp.get("MessageId", ""))
