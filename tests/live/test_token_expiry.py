"""Token expiry against the real Airflow 3: an expired JWT is answered 401, and the backend
fetches a new token once and carries on.

Waiting out a real expiry would need a second server with a short `jwt_expiration_time`; the
server's own signing secret lets us mint a token that is exactly like the one it issued, only
already expired, which the server rejects with the same "Token Expired" 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx

from reconciler.live.airflow_api import AirflowApiBackend
from reconciler.live.rest.errors import Secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def expired_copy(token: str, secret: str) -> str:
    header_b64, payload_b64, _ = token.split(".")
    header = json.loads(_unb64(header_b64))
    payload = json.loads(_unb64(payload_b64))
    now = int(time.time())
    payload.update(iat=now - 3600, nbf=now - 3600, exp=now - 600)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
    signing_input = f"{header_b64}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(sig)}"


def test_expired_token_is_refreshed_once(airflow3, monkeypatch):
    monkeypatch.setenv("PAUSECTL_T_USER", airflow3.username)
    monkeypatch.setenv("PAUSECTL_T_PASSWORD", airflow3.password)
    backend = AirflowApiBackend("af3", {"type": "airflow-api", "url": airflow3.url,
                                        "auth": "password-token", "username_env": "PAUSECTL_T_USER",
                                        "password_env": "PAUSECTL_T_PASSWORD"})
    try:
        first = backend.list_dags()
        token = backend.auth.token.value
        stale = expired_copy(token, airflow3.env["AIRFLOW__API_AUTH__JWT_SECRET"])
        # the server itself says this token has expired
        r = httpx.get(f"{airflow3.url}/api/v2/dags", params={"limit": 1},
                      headers={"Authorization": f"Bearer {stale}"})
        assert r.status_code == 401, r.text
        assert "expired" in r.text.lower()
        backend.auth.token = Secret(stale)
        gen = backend.auth.gen
        again = backend.list_dags()
        assert backend.auth.gen == gen + 1          # exactly one new login
        assert backend.auth.token.value not in (stale,)
        assert {d.dag_id for d in again} == {d.dag_id for d in first}
    finally:
        backend.close()
