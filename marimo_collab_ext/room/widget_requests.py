"""Strict parsing of the requests marimo's own frontend makes of UI elements and widgets.

`function_call` and `set_model_value` (docs/protocol.md, "Running"); pure, no I/O.
"""

from __future__ import annotations

import base64
import binascii

from ..kernel import FunctionCall, ModelWrite
from .errors import BadRequest

MAX_ID = 128  # function_call_id, function_name
MAX_OBJECT_ID = 256  # namespace (a UI element's object id), model_id
MAX_BUFFER_PATH = 64  # components of one buffer path
# Widget code and style travel only from the kernel (marimo's comm refuses them too).
_KERNEL_ONLY_STATE = frozenset({"_esm", "_css"})


def _string(message: dict, key: str, limit: int) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise BadRequest(f"`{key}` must be a non-empty string of at most {limit} characters")
    return value


def parse_function_call(message: dict) -> FunctionCall:
    """The call a `function_call` message asks for; BadRequest when any field is malformed."""
    args = message.get("args")
    if not isinstance(args, dict):
        raise BadRequest("`args` must be a JSON object")
    return FunctionCall(call_id=_string(message, "function_call_id", MAX_ID),
                        namespace=_string(message, "namespace", MAX_OBJECT_ID),
                        function_name=_string(message, "function_name", MAX_ID), args=args)


def _buffers(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(b, str) for b in value):
        raise BadRequest("`buffers` must be a list of base64 strings")
    for buffer in value:
        try:
            base64.b64decode(buffer, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("`buffers` must be a list of base64 strings") from None
    return value


def _buffer_paths(value: object) -> list[list[str | int]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("`message.bufferPaths` must be a list of paths")
    for path in value:
        if (not isinstance(path, list) or not 0 < len(path) <= MAX_BUFFER_PATH
                or not isinstance(path[0], str)
                or not all(isinstance(p, str) or (isinstance(p, int) and not isinstance(p, bool)
                                                  and p >= 0) for p in path)):
            raise BadRequest("each buffer path is a list of keys and indexes under a state key")
    return value


def parse_model_write(message: dict) -> ModelWrite:
    """The widget model message a `set_model_value` carries; BadRequest when malformed.

    `message` is marimo's frontend form: `{"method"?: "update", "state", "bufferPaths"}` or
    `{"method": "custom", "content"}`.
    """
    model_id = _string(message, "model_id", MAX_OBJECT_ID)
    body = message.get("message")
    if not isinstance(body, dict):
        raise BadRequest("`message` must be a JSON object")
    buffers = _buffers(message.get("buffers"))
    method = body.get("method", "update")
    if method == "custom":
        if "content" not in body:
            raise BadRequest("a custom `message` needs `content`")
        return ModelWrite(model_id, "custom", buffers=buffers, content=body["content"])
    if method != "update":
        raise BadRequest("`message.method` must be \"update\" or \"custom\"")
    state = body.get("state")
    if not isinstance(state, dict):
        raise BadRequest("`message.state` must be a JSON object")
    if _KERNEL_ONLY_STATE & state.keys():
        raise BadRequest("a widget's code and style (`_esm`, `_css`) come from the kernel only")
    paths = _buffer_paths(body.get("bufferPaths"))
    if len(paths) != len(buffers):
        raise BadRequest("`message.bufferPaths` and `buffers` must have the same length")
    return ModelWrite(model_id, "update", state=state, buffer_paths=paths, buffers=buffers)
