"""InvokeSigner (precomputed SigV4) against botocore's SigV4Auth as the oracle."""

from __future__ import annotations

from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.aws.signing import BotocoreSigner, InvokeSigner, _CachedKeySigV4Auth, host_header
from tests.hooks.lambda_api_server import AUTH_RE

STATIC = {"X-Amz-Invocation-Type": "RequestResponse"}
UNSIGNED = {"User-Agent": "test-agent/1.0", "Accept-Encoding": "identity"}


def botocore_signature(
    headers: dict[str, str], url: str, body: bytes, creds: ReadOnlyCredentials, region: str
) -> tuple[str, str]:
    """(signature, canonical request) botocore computes for the signed subset of ``headers``."""
    match = AUTH_RE.fullmatch(headers["Authorization"])
    assert match is not None
    signed = {name: headers[_original(headers, name)] for name in match["signed"].split(";")}
    request = AWSRequest(method="POST", url=url, headers=signed, data=body)
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(creds, "lambda", region)
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request), canonical


def _original(headers: dict[str, str], lower: str) -> str:
    return next(k for k in headers if k.lower() == lower)


function_names = st.text(alphabet=st.sampled_from("abcXYZ019-_.:$"), min_size=1, max_size=80)
endpoints = st.sampled_from(
    [
        "https://lambda.us-east-1.amazonaws.com",
        "https://lambda.us-east-1.amazonaws.com:443",
        "http://127.0.0.1:9001",
        "http://localhost",
        "https://lambda.cn-north-1.amazonaws.com.cn/",
        "http://[::1]:8080",
    ]
)


@given(
    endpoint=endpoints,
    name=function_names,
    qualifier=st.one_of(st.none(), st.sampled_from(["$LATEST", "prod", "7", "a_b-c"])),
    body=st.binary(max_size=4096),
    token=st.one_of(st.none(), st.text(min_size=1, max_size=60).filter(lambda t: t.strip() == t)),
    region=st.sampled_from(["us-east-1", "eu-west-3", "cn-north-1"]),
)
def test_fast_signer_matches_botocore(
    endpoint: str, name: str, qualifier: str | None, body: bytes, token: str | None, region: str
) -> None:
    url = f"{endpoint.rstrip('/')}/2015-03-31/functions/{quote(name, safe='')}/invocations"
    if qualifier:
        url += f"?Qualifier={quote(qualifier, safe='-_.~')}"
    creds = ReadOnlyCredentials("AKIDFAST", "fast-secret/+", token)
    fast = InvokeSigner(url, region=region, static_headers=STATIC, unsigned_headers=UNSIGNED)
    headers = fast.sign(creds, body)
    expected, canonical = botocore_signature(headers, url, body, creds, region)
    match = AUTH_RE.fullmatch(headers["Authorization"])
    assert match is not None
    assert match["signature"] == expected
    assert match["region"] == region and match["key"] == "AKIDFAST"
    # the canonical request is botocore's, byte for byte
    import hashlib

    payload = hashlib.sha256(body).hexdigest()
    assert fast.canonical_request(headers["X-Amz-Date"], token, payload) == canonical
    assert headers["Host"] == host_header(url)
    assert ("X-Amz-Security-Token" in headers) is (token is not None)
    for name_, value in UNSIGNED.items():
        assert headers[name_] == value
        assert name_.lower() not in match["signed"].split(";")


def test_reference_signer_produces_the_same_header_set() -> None:
    url = "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/fn/invocations"
    creds = ReadOnlyCredentials("AKID", "secret", "token")
    fast = InvokeSigner(url, region="us-east-1", static_headers=STATIC, unsigned_headers=UNSIGNED)
    ref = BotocoreSigner(url, region="us-east-1", static_headers=STATIC, unsigned_headers=UNSIGNED)
    a, b = fast.sign(creds, b"{}"), ref.sign(creds, b"{}")
    assert set(a) == set(b)
    if a["X-Amz-Date"] == b["X-Amz-Date"]:  # same second: identical signatures
        assert a == b
    expected, _ = botocore_signature(b, url, b"{}", creds, "us-east-1")
    assert expected in b["Authorization"]


def test_cached_signing_key_follows_secret_and_day() -> None:
    """The cached key is re-derived when the secret or the UTC day changes."""
    cached = _CachedKeySigV4Auth(None, "lambda", "us-east-1")
    for secret, stamp in [
        ("s1", "20260101T000000Z"),
        ("s1", "20260101T235959Z"),
        ("s1", "20260102T000000Z"),
        ("s2", "20260102T000000Z"),
        ("s1", "20260101T120000Z"),
    ]:
        creds = ReadOnlyCredentials("AKID", secret, None)
        cached.credentials = creds
        request = AWSRequest(method="POST", url="https://x/", data=b"")
        request.context["timestamp"] = stamp
        plain = SigV4Auth(creds, "lambda", "us-east-1")
        assert cached.signature("string-to-sign", request) == plain.signature(
            "string-to-sign", request
        )
