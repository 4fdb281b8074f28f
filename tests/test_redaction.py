"""URL credentials: split off for an Authorization header, masked in any text (`dart_hf.redaction`)."""

import base64

from dart_hf.errors import RunError, one_line
from dart_hf.redaction import Secrets, redact, split_credentials


def test_redact_masks_the_userinfo_of_every_url_in_a_text():
    text = "tried http://alice:pw@gpu1:8000/v1 and https://tok%40en@gpu2/x, not mail@example.com or http://gpu3:80"
    assert redact(text) == (
        "tried http://***@gpu1:8000/v1 and https://***@gpu2/x, not mail@example.com or http://gpu3:80"
    )
    assert redact("http://a:b@c@host:1/p") == "http://***@host:1/p"  # userinfo runs to the last @, as urlsplit reads it
    assert one_line(RunError("cannot reach\nhttp://alice:pw@gpu1:8000")) == "cannot reach http://***@gpu1:8000"


def test_split_credentials_gives_the_bare_url_and_a_basic_header_with_escapes_decoded():
    url, header = split_credentials("http://alice:p%40ss%2Fw@gpu1:8000")
    assert url == "http://gpu1:8000"
    assert header == "Basic " + base64.b64encode(b"alice:p@ss/w").decode()
    assert split_credentials("http://gpu1:8000") == ("http://gpu1:8000", None)


def test_secrets_scrub_raw_decoded_and_encoded_forms():
    secrets = Secrets(["api-KEY-1"])
    secrets.add_url("http://alice:p%40ssword@gpu1:8000")
    token = base64.b64encode(b"alice:p@ssword").decode()
    text = f"echo: api-KEY-1, p@ssword, p%40ssword, alice:p@ssword, Basic {token}, at http://x:y@h"
    scrubbed = secrets.scrub(text)
    for secret in ("api-KEY-1", "p@ssword", "p%40ssword", token, "x:y"):
        assert secret not in scrubbed, scrubbed
    assert "***" in scrubbed and "echo:" in scrubbed
    assert "KEY" not in repr(secrets)
