"""Secrets never leave the process: not in stdout, stderr or any file pausectl writes, in any
encoding a server or an exception could echo them in (literal, JSON-escaped, URL-encoded,
HTML-escaped, base64 of the password and of `user:password`, the bearer token / JWT).

The credentials come from the env vars pausectl.yaml names (username_env/password_env,
token_env); a real HTTP server on 127.0.0.1 echoes them back in every place it can.
"""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from servers import (ENV, JWT, PASSWORD, USER, HostileAirflow, assert_clean, assert_no_secret,
                     assert_no_secret_in_files, dag_row, echo_credentials, json_reply, reply, run)
from test_hostile_server import api_state, expect_failure, on

try:
    from helpers import tree_hash
except ImportError:  # pragma: no cover
    from tests.helpers import tree_hash

PAIR = f"{USER}:{PASSWORD}"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


ENCODINGS = {
    "literal": PASSWORD,
    "json-escaped": json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
    "json-ascii-escaped": json.dumps(PASSWORD, ensure_ascii=True)[1:-1],
    "url-quote": quote(PASSWORD, safe=""),
    "url-quote-lower-hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(),
                                  quote(PASSWORD, safe="")),
    "url-quote-plus": quote_plus(PASSWORD),
    "html-escaped": html.escape(PASSWORD),
    "python-repr": repr(PASSWORD),
    "base64-password": _b64(PASSWORD),
    "base64-password-unpadded": _b64(PASSWORD).rstrip("="),
    "base64-urlsafe-password": base64.urlsafe_b64encode(PASSWORD.encode()).decode(),
    "basic-header": "Basic " + _b64(PAIR),
    "base64-pair-inside-longer-base64": _b64("Authorization: Basic x " + PAIR + " trailer"),
    "base64-password-misaligned": _b64("ab" + PASSWORD + "cd"),
    "bearer-jwt": "Bearer " + JWT,
    "jwt-signature-alone": JWT.rsplit(".", 1)[1],
    "jwt-json-escaped": json.dumps(JWT),
}


def test_the_encodings_really_differ():
    """Guard against a vacuous suite: each form is not just the literal again."""
    assert len(set(ENCODINGS.values())) == len(ENCODINGS)
    assert [k for k, v in ENCODINGS.items() if PASSWORD in v] == ["literal"]


@pytest.mark.parametrize("form", sorted(ENCODINGS))
def test_error_body_with_a_secret_form(tmp_path, form):
    with HostileAirflow() as s:
        on(s, "/api/v2/dags", lambda h, b: json_reply(h, 500, {"detail": f"echo {ENCODINGS[form]}"}))
        line = expect_failure(tmp_path, s, fragment="HTTP 500 echo ")
        assert "***" in line


@pytest.mark.parametrize("form", ["literal", "base64-password", "basic-header", "bearer-jwt",
                                  "url-quote-plus", "html-escaped"])
def test_secret_forms_in_dag_data_are_masked_everywhere(tmp_path, form):
    """A server that puts the credentials INTO the data (dag id, owner, tag): plan text, JSON
    and Markdown, the --out plan file and an export file all show *** instead."""
    value = ENCODINGS[form]
    dags = [dag_row("billing_daily"), dag_row(f"x{value}", owners=[value], tags=[{"name": value}])]
    with HostileAirflow(dags=dags) as s:
        api_state(tmp_path, s.url)
        outs = []
        for args in (["plan", "prod"], ["plan", "prod", "--format", "json", "--out", "p.json"],
                     ["plan", "prod", "--format", "markdown"],
                     ["export", "prod", "--out", "e.json"]):
            r = run(args, tmp_path, ENV)
            assert r.code == 0, r.text
            assert_clean(r, "json" if "json" in args else "text")
            outs.append(r.text)
        assert_no_secret("\n".join(outs))
        assert_no_secret_in_files(tmp_path)
        assert "***" in (tmp_path / "e.json").read_text()


def test_event_log_user_is_the_password(tmp_path):
    """drift names who changed a DAG: the event log's owner is server data like any other."""
    events = {"event_logs": [{"event": "patch_dag", "dag_id": "billing_daily", "owner": PASSWORD,
                              "when": "2026-01-01T00:00:00Z", "extra": json.dumps(
                                  {"is_paused": False, "auth": "Basic " + _b64(PAIR)})}],
              "total_entries": 1}
    with HostileAirflow() as s:
        on(s, "/api/v2/eventLogs", lambda h, b: json_reply(h, 200, events))
        api_state(tmp_path, s.url)
        for fmt in ("text", "json", "markdown"):
            r = run(["drift", "prod", "--format", fmt], tmp_path, ENV)
            assert r.code == 0, r.text
            assert_clean(r, fmt)
            assert_no_secret(r.text)


def test_every_request_echoed_back_still_ends_with_no_secret(tmp_path):
    """Every route echoes the request's Authorization header and body (token POST included)."""
    with HostileAirflow() as s:
        on(s, "/api/v2/dags*", echo_credentials, method="*")
        expect_failure(tmp_path, s)
        sent = [q for q in s.requests if q[1] == "/auth/token"]
        # it was sent (so the server could echo it), and still never shown
        assert sent and json.loads(sent[0][3])["password"] == PASSWORD


def test_request_bodies_are_never_printed(tmp_path):
    """A 422 whose detail is the request body, pydantic-style (loc + input): not printed."""
    def invalid(h, body):
        json_reply(h, 422, {"detail": [{"loc": ["body", "password"], "msg": "bad",
                                        "input": body.decode()}]})
    with HostileAirflow() as s:
        on(s, "/auth/token", invalid, method="POST")
        line = expect_failure(tmp_path, s, fragment="authentication failed")
        assert line == ("error: authentication failed for prod "
                        "(check AIRFLOW_USER and AIRFLOW_PASSWORD)")


def test_bearer_token_from_token_env(tmp_path):
    env = {"AIRFLOW_TOKEN": JWT}
    with HostileAirflow() as s:
        on(s, "/api/v2/dags", lambda h, b: json_reply(h, 500, {
            "detail": h.headers.get("Authorization"), "token": JWT}))
        root = api_state(tmp_path, s.url, auth="bearer", token_env="AIRFLOW_TOKEN")
        before = tree_hash(root)
        r = run(["plan", "prod"], tmp_path, env)
        assert r.code == 1 and "HTTP 500" in r.err and "***" in r.err, r.text
        assert_clean(r)
        assert_no_secret(r.text)
        assert tree_hash(root) == before


def test_jwt_handed_out_by_the_server_is_masked_when_it_comes_back(tmp_path):
    """The token /auth/token returned (not an env var) counts as a secret from then on."""
    with HostileAirflow() as s:
        on(s, "/api/v2/dags", lambda h, b: json_reply(h, 200, {
            "dags": [dag_row("d_" + JWT.rsplit(".", 1)[1])], "total_entries": 1}))
        api_state(tmp_path, s.url)
        r = run(["plan", "prod", "--format", "json"], tmp_path, ENV)
        assert r.code == 0, r.text
        assert_no_secret(r.text)
        assert '"d_***"' in r.out


def test_credentials_in_the_url_are_refused_without_echo(tmp_path):
    with HostileAirflow() as s:
        url = s.url.replace("http://", f"http://{USER}:{quote(PASSWORD, safe='')}@")
        api_state(tmp_path, url)
        r = run(["plan", "prod"], tmp_path, ENV)
        assert r.code == 1 and "must not contain credentials" in r.err, r.text
        assert_clean(r)
        assert_no_secret(r.text)
        assert s.requests == []


def test_wrong_password_error_names_the_variables_not_the_value(tmp_path):
    with HostileAirflow() as s:
        on(s, "/auth/token", lambda h, b: json_reply(h, 401, {"detail": b.decode()}),
           method="POST")
        line = expect_failure(tmp_path, s, fragment="check AIRFLOW_USER and AIRFLOW_PASSWORD")
        assert PASSWORD not in line


def test_secret_in_a_redirect_location(tmp_path):
    with HostileAirflow() as s:
        on(s, "/api/v2/dags", lambda h, b: reply(h, 302, b"", headers={
            "Location": f"https://evil.example/{quote(PASSWORD, safe='')}/x?{quote_plus(PASSWORD)}"}))
        expect_failure(tmp_path, s, fragment="redirected to")


def test_subprocess_cli_masks_an_echoed_basic_header(tmp_path):
    """The console entry point (a real process): the same masking."""
    with HostileAirflow() as s:
        on(s, "/api/v2/dags", lambda h, b: json_reply(h, 500, {"detail": "Basic " + _b64(PAIR)}))
        api_state(tmp_path, s.url, retries=0)
        r = run(["plan", "prod"], tmp_path, ENV, subprocess_=True)
        assert r.code == 1 and "***" in r.err, r.text
        assert_clean(r)
        assert_no_secret(r.text)
