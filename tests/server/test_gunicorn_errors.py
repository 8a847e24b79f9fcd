"""What gunicorn itself answers to a request it will not hand to the app: an over-long request
line (414) or too many header fields (431). Its own bare page, with none of the app's
security headers, as docs/deployment.md says: the TLS terminator in front must add them, and
HSTS (which the service never sends: it does not know it is behind HTTPS)."""

import socket

import pytest

from webapp.simulator import start_server

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


@pytest.fixture(scope="module")
def server(production_server):
    upstream = start_server()
    try:
        yield production_server(upstream.url, name="limits", workers=1, WIDGET_WORKERS="1")
    finally:
        upstream.stop()


def raw_request(url: str, head: str) -> tuple[str, dict[str, str], str]:
    """Send `head` as is; the status line, headers (lower-case names) and body answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(head.encode("latin-1"))
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    top, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    status, *lines = top.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def test_an_over_long_request_line_gets_gunicorn_s_own_414_without_security_headers(server):
    status, headers, body = raw_request(
        server.url, f"GET /disposition?{'x' * 5000} HTTP/1.1\r\nHost: widget\r\n\r\n"
    )
    assert status == "HTTP/1.1 414 URI Too Long"
    assert sorted(headers) == ["connection", "content-length", "content-type"]
    assert not any(name in headers for name in SECURITY_HEADERS)  # the terminator adds them
    # The asgi worker's own page is one plain line (gthread's was a small HTML page).
    assert body == "Request line is too large" and "xxxxxxxxxx" not in body  # nothing echoed


def test_too_many_header_fields_get_gunicorn_s_own_431(server):
    fields = "".join(f"X-Extra-{i}: {i}\r\n" for i in range(60))
    status, headers, _ = raw_request(
        server.url, f"GET /healthz HTTP/1.1\r\nHost: w\r\n{fields}\r\n"
    )
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert not any(name in headers for name in SECURITY_HEADERS)


def test_the_app_s_own_answers_carry_the_headers_but_never_hsts(server):
    status, headers, _ = raw_request(
        server.url, "GET /healthz HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n"
    )
    assert status == "HTTP/1.1 200 OK"
    assert all(name in headers for name in SECURITY_HEADERS)
    assert "strict-transport-security" not in headers  # the TLS terminator's to send


def test_the_start_up_line_names_the_address_and_the_workers(server):
    # gunicorn's own "Listening at:" is empty with reuse_port: ours says where to connect.
    log = server.log_path.read_text(errors="replace")
    assert f"disposition widget listening on {server.url} (1 worker x " in log
