"""Task outcomes the store refuses become the task's recorded failure.

A result too large or not JSON is not the caller's protocol mistake but the task's outcome:
it is recorded as a failure naming the task and the setting to change, so the task never
stays RUNNING and a replay returns that failure instead of running the task again.
"""

from __future__ import annotations

from pynenc_sidecar.core.derivations import parse_json

RESULT_TOO_LARGE = "ResultTooLarge"
RESULT_NOT_JSON = "ResultNotJson"
# The server setting that bounds every stored value (settings.py: max_value_bytes).
VALUE_LIMIT_SETTING = "--max-value-bytes / PYNENC_SIDECAR_MAX_VALUE_BYTES"


def refused_result(result_json: str, max_bytes: int) -> tuple[str, str] | None:
    """(error type, what is wrong) when the store cannot keep this result; None when it can."""
    size = len(result_json.encode("utf-8"))
    if size > max_bytes:
        return RESULT_TOO_LARGE, f"is {size} bytes; the sidecar stores values of at most {max_bytes} bytes"
    if not result_json:
        return RESULT_NOT_JSON, "is empty, not JSON text"
    try:
        parse_json(result_json)
    except (ValueError, RecursionError) as exc:
        return RESULT_NOT_JSON, f"is not valid JSON ({exc})"
    return None


def refusal_error(error_type: str, problem: str, task_id: str, invocation_id: str) -> dict[str, str]:
    """The failure recorded for a refused result."""
    if error_type == RESULT_TOO_LARGE:
        advice = (f"return less (keep large data elsewhere and return a reference), or raise the limit "
                  f"with {VALUE_LIMIT_SETTING}")
    else:
        advice = "return a JSON value"
    message = f"the result of task {task_id} (invocation {invocation_id}) {problem}: {advice}"
    return {"type": error_type, "message": message, "detail_json": "", "traceback": ""}


def truncate(text: str, max_bytes: int) -> str:
    """text cut to at most max_bytes of UTF-8 (never inside a character), with a note saying so."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    kept = data[:max_bytes].decode("utf-8", errors="ignore")
    return f"{kept}… [cut: {len(data)} bytes, at most {max_bytes} are kept ({VALUE_LIMIT_SETTING})]"


def bounded_error(error_type: str, message: str, detail_json: str, traceback: str, max_bytes: int) -> dict[str, str]:
    """A task's error as stored: message and traceback cut to the value limit, an oversized
    detail dropped (said in the message), everything else kept."""
    if detail_json and len(detail_json.encode("utf-8")) > max_bytes:
        message += f" [detail_json dropped: {len(detail_json.encode('utf-8'))} bytes; at most {max_bytes} are kept]"
        detail_json = ""
    return {"type": error_type, "message": truncate(message, max_bytes), "detail_json": detail_json,
            "traceback": truncate(traceback, max_bytes)}

