"""The shared derivation vectors (tests/vectors/derivations.json) agree with the Python reference.

The same file is checked by the Go (sdk/go/wf) and TypeScript (sdk/ts) unit tests, so every
language derives the same random() and uuid() values as the server.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from pynenc_sidecar.core import derivations
from pynenc_sidecar_sdk import derivations as sdk_derivations

VECTORS = json.loads((Path(__file__).parent / "vectors" / "derivations.json").read_text(encoding="utf-8"))
CASES = VECTORS["derivations"]


def test_namespace_is_documented_uuid5():
    assert VECTORS["uuid_namespace"] == str(derivations.UUID_NAMESPACE) == str(sdk_derivations.UUID_NAMESPACE)
    assert uuid.uuid5(uuid.NAMESPACE_URL, "https://pynenc.org/sidecar/uuid/v1") == derivations.UUID_NAMESPACE


def test_vectors_cover_the_interesting_scopes():
    scopes = {case["scope"] for case in CASES}
    assert any(not s.isascii() for s in scopes), "a unicode scope"
    assert any(len(s.encode()) >= 1024 for s in scopes), "a long scope"
    assert any("#" in s for s in scopes), "a scope containing the separator"
    sequences = {case["sequence"] for case in CASES}
    assert {1, 2, 2**53} <= sequences


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['scope'][:20]}#{c['sequence']}")
def test_derivation_vector(case):
    scope, sequence = case["scope"], case["sequence"]
    assert derivations.derivation_name(scope, sequence) == case["name"]
    digest = hashlib.sha256(case["name"].encode("utf-8")).digest()
    assert digest.hex() == case["sha256"]
    assert int.from_bytes(digest[:8], "big") >> 11 == case["random_bits"]
    assert case["random_bits"] < 2**53
    value = derivations.random_value(scope, sequence)
    assert value == case["random"] == case["random_bits"] / 2**53
    assert 0.0 <= value < 1.0
    assert derivations.uuid_value(scope, sequence) == case["uuid"]
    assert uuid.UUID(case["uuid"]).version == 5
    # the Python SDK derives its buffered values itself, the same way
    assert sdk_derivations.random_value(scope, sequence) == case["random"]
    assert sdk_derivations.uuid_value(scope, sequence) == case["uuid"]


@pytest.mark.parametrize("case", VECTORS["canonical_json"], ids=lambda c: c["input"][:30])
def test_canonical_json_vector(case):
    assert derivations.canonical_json(derivations.parse_json(case["input"])) == case["canonical"]
