import time

from core.signing import Verdict, file_path, sign_url, verify

SECRET = "s3cret"


def parts(url: str) -> tuple[str, str, str]:
    path, query = url.split("://", 1)[1].split("/", 1)[1].split("?")
    q = dict(p.split("=") for p in query.split("&"))
    return "/" + path, q["expires"], q["signature"]


def test_signed_url_verifies_until_expiry():
    exp = int(time.time()) + 60
    path, expires, sig = parts(sign_url(SECRET, "http://h:1", "t/j/0.png", exp))
    assert path == "/files/t/j/0.png"
    assert verify(SECRET, "GET", path, expires, sig) is Verdict.OK
    assert verify(SECRET, "HEAD", path, expires, sig) is Verdict.OK
    assert verify(SECRET, "GET", path, expires, sig, now=exp + 1) is Verdict.EXPIRED


def test_any_change_breaks_the_signature():
    exp = int(time.time()) + 60
    path, expires, sig = parts(sign_url(SECRET, "http://h:1", "t/j/0.png", exp))
    assert verify(SECRET, "GET", "/files/t/j/1.png", expires, sig) is Verdict.INVALID
    assert verify(SECRET, "GET", path, str(exp + 3600), sig) is Verdict.INVALID
    assert verify(SECRET, "DELETE", path, expires, sig) is Verdict.INVALID
    assert verify("other", "GET", path, expires, sig) is Verdict.INVALID
    flipped = sig[:-1] + ("1" if sig[-1] == "0" else "0")
    assert verify(SECRET, "GET", path, expires, flipped) is Verdict.INVALID


def test_an_expired_forgery_is_invalid_not_expired():
    path = file_path("t/j/0.png")
    assert verify(SECRET, "GET", path, str(int(time.time()) - 10), "00" * 32) is Verdict.INVALID


def test_malformed_queries_are_invalid():
    path = file_path("t/j/0.png")
    for expires, sig in ((None, "x"), ("12", None), ("-5", "x"), ("abc", "x"), ("", "")):
        assert verify(SECRET, "GET", path, expires, sig) is Verdict.INVALID


def test_keys_are_quoted_in_paths():
    assert file_path("t/j/a b.png") == "/files/t/j/a%20b.png"
