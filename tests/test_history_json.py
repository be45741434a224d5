"""The fast history decoder (service/history_json.py) gives json_format's message for every
entry the server stores, and its timestamp parser FromJsonString's value, or its refusal."""

from __future__ import annotations

from google.protobuf import json_format, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from pynenc_sidecar.service.history_json import load_history, set_timestamp
from pynenc_sidecar_proto.v1 import common_pb2
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb

TIMESTAMP_MIN_S, TIMESTAMP_MAX_S = -62_135_596_800, 253_402_300_799
timestamps = st.builds(lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n),
                       st.integers(TIMESTAMP_MIN_S, TIMESTAMP_MAX_S),
                       st.one_of(st.integers(0, 999_999_999), st.sampled_from([0, 1000, 123_000_000, 999_999])))
texts = st.text(max_size=40)


def fast_and_slow(text: str) -> tuple[object, object]:
    outcomes = []
    for parse in (set_timestamp, lambda target, value: target.FromJsonString(value)):
        target = timestamp_pb2.Timestamp()
        try:
            parse(target, text)
            outcomes.append((target.seconds, target.nanos))
        except (ValueError, TypeError) as error:
            outcomes.append(type(error))
    return outcomes[0], outcomes[1]


@settings(max_examples=500, deadline=None)
@given(timestamps)
def test_a_timestamp_json_format_wrote_parses_to_the_same_value(stamp: timestamp_pb2.Timestamp) -> None:
    fast, slow = fast_and_slow(stamp.ToJsonString())
    assert fast == slow == (stamp.seconds, stamp.nanos)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,12})?Z?", fullmatch=True),
                 st.sampled_from(["2023-02-29T00:00:00Z", "2023-12-31T23:59:60Z", "2023-13-01T00:00:00Z",
                                  "2023-01-01T00:00:00+01:00", "2023-01-01t00:00:00z", "２０２３-01-01T00:00:00Z",
                                  "0000-01-01T00:00:00Z", "2023-01-01T00:00:00.Z"])))
def test_any_other_text_gets_from_json_strings_verdict(text: str) -> None:
    fast, slow = fast_and_slow(text)
    assert fast == slow


entries = st.builds(
    sb.InvocationHistory, timestamp=st.one_of(st.none(), timestamps),
    status=st.sampled_from(list(common_pb2.InvocationStatus.values())), runner_id=st.text(max_size=20),
    execution_context_json=st.text(max_size=50), status_runner_id=st.text(max_size=20),
    status_timestamp=st.one_of(st.none(), timestamps), registered_by_invocation_id=st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(entries)
def test_an_entry_decodes_to_what_json_format_parses(entry: sb.InvocationHistory) -> None:
    text = json_format.MessageToJson(entry, indent=None)
    assert load_history(text) == json_format.Parse(text, sb.InvocationHistory(), ignore_unknown_fields=True)
