"""pynenc_sidecar_proto.connection: the one PYNENC_SIDECAR_* rule the Python SDK and the Pynenc
plugin share (docs/client-contract.md)."""

from __future__ import annotations

import pytest

from pynenc_sidecar_proto.connection import ENV, ClientSecurity, OptionNames
from pynenc_sidecar_sdk import client as sdk_client


def test_unset_options_come_from_the_variables_and_a_tls_file_turns_tls_on():
    environ = {ENV["tls_ca"]: " /ca.pem ", ENV["token"]: "t0ken"}
    security = ClientSecurity.resolve(environ=environ)
    assert (security.tls, security.tls_ca, security.token) == (True, "/ca.pem", "t0ken")
    assert ClientSecurity.resolve(tls_ca="/mine.pem", environ=environ).tls_ca == "/mine.pem"  # an argument wins


def test_tls_none_follows_the_variable_and_false_stays_off():
    assert ClientSecurity.resolve(environ={ENV["tls"]: "yes"}).tls is True
    assert ClientSecurity.resolve(environ={}).tls is False
    assert ClientSecurity.resolve(tls=False, environ={ENV["tls"]: "true"}).tls is False


@pytest.mark.parametrize("names, expected", [
    (sdk_client.OPTION_NAMES, "tls_cert and tls_key"),
    (OptionNames("sidecar_tls_ca", "sidecar_client_cert", "sidecar_client_key"),
     "sidecar_client_cert and sidecar_client_key"),
])
def test_a_certificate_without_its_key_is_refused_in_the_callers_words(names, expected):
    with pytest.raises(ValueError, match=expected) as refused:
        ClientSecurity.resolve(environ={ENV["client_cert"]: "/cert.pem"}, names=names)
    assert "PYNENC_SIDECAR_CLIENT_KEY" in str(refused.value)


def test_an_unreadable_file_is_named(tmp_path):
    security = ClientSecurity.resolve(tls_ca=str(tmp_path / "missing.pem"), environ={})
    with pytest.raises(ValueError, match="cannot read the tls_ca file .*missing.pem"):
        security.credentials()


def test_the_sdk_uses_the_shared_variables():
    assert sdk_client.ENV is ENV
