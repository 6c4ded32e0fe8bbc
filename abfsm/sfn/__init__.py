"""The Step Functions engine (preview): the spec compiled to Amazon States Language.

`compiler` turns a validated spec into one state machine (JSONPath ASL, aws-sdk service
integrations only); `fragments` holds each built-in action's ASL form; `engine` creates the
state machine, starts executions and follows them to their end.
"""
