"""Authentication as httpx.Auth objects (the shape of httpx/_auth.py): each one sets its
credentials on a request and, in `auth_flow`, decides what a 401/403 answer means: log in
again once and re-send, probe whether the credentials still work, or fail. Logins and probes
go through the Transport like every request (whole-request deadline, byte cap, retries).

* JwtAuth (password-token on REST v2): POST {url}/auth/token -> access_token; on a 401
  ("Token Expired") or AF3's 403 "Invalid JWT token" (signed before a restart with a new
  secret) one new token, then the request again. Concurrent failures log in once (`gen`).
* SessionAuth (password-token on REST v1): AF2 has no /auth/token. Log in once through the
  webserver's login form and send only the session cookie (AF2's default `session` API auth
  backend): with HTTP basic AF2 checks the password hash on EVERY request (~140 ms of CPU,
  measured: 5x slower under load). If the form or the session does not work: HTTP basic.
* REST v1 answers 403 (not 401) for a wrong password, exactly as for a missing permission:
  such a 403 is told apart by one read-only probe (GET /dags?limit=1); once basic
  credentials are proven good the probe is not repeated (they do not expire), a session is
  re-checked (and re-logged-in once) each time."""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Callable, Generator, Mapping

import httpx

from reconciler.core.errors import BackendError
from reconciler.live.rest.errors import Fatal, Secret
from reconciler.live.rest.transport import Transport

log = logging.getLogger(__name__)

Flow = Generator[httpx.Request, httpx.Response, None]


class Credentials:
    """The secrets one backend uses, read from the environment once (never printed)."""

    def __init__(self, name: str, mode: str, env: Mapping[str, str], user_env: str,
                 password_env: str, token_env: str):
        self.mode, self.user_env, self.password_env = mode, user_env, password_env
        self.token_env = token_env
        self.username: str | None = None
        self.password: Secret | None = None
        self.static_token: Secret | None = None

        def read(var: str) -> str:
            val = env.get(var)
            if not val:
                raise BackendError(f"{name}: environment variable {var} is not set "
                                   f"(needed for auth: {mode})")
            return val
        if mode in ("basic", "password-token"):
            self.username = read(user_env)
            self.password = Secret(read(password_env))
        elif mode == "bearer":
            self.static_token = Secret(read(token_env))

    def hint(self) -> str:
        if self.mode == "bearer":
            return f"check {self.token_env}"
        if self.mode == "none":
            return "the server needs credentials but auth is none"
        return f"check {self.user_env} and {self.password_env}"

    def basic_header(self) -> str:
        assert self.username is not None and self.password is not None
        pair = f"{self.username}:{self.password.value}".encode()
        return "Basic " + base64.b64encode(pair).decode()


class RestAuth(httpx.Auth):
    """No credentials (auth: none), and the 401/403 logic every kind shares."""

    def __init__(self, t: Transport, creds: Credentials, *, ambiguous_403: bool,
                 probe_url: str, fail: Callable[[], BackendError]):
        self.t, self.creds, self.ambiguous_403 = t, creds, ambiguous_403
        self.probe_url, self.fail = probe_url, fail
        self.lock = threading.Lock()             # guards gen and the credential in use
        self.refresh_lock = threading.Lock()     # one re-login at a time
        self.gen = 0                             # bumped by every (re-)login
        self.proven = False                      # an authenticated request has succeeded

    # what kinds override
    def apply(self, request: httpx.Request) -> None:
        """Put the current credentials on `request`."""

    def login(self) -> None:
        """Log in (before the first request, and again after a failure if refreshable)."""

    def refreshable(self) -> bool:
        return False

    def trusted(self) -> bool:
        """Is an ambiguous 403 a missing permission without asking (proven basic auth)?"""
        return self.proven

    def secrets(self) -> list[Secret]:
        return []

    # the shared flow
    def is_failure(self, resp: httpx.Response) -> bool:
        if resp.status_code == 401:
            return True
        if resp.status_code != 403:
            return False
        if self.ambiguous_403:
            return True           # AF2: bad credentials and missing permission look alike
        try:
            detail = resp.json().get("detail")
        except (ValueError, AttributeError):
            return False
        # AF3: a token the server cannot verify (e.g. signed before a restart) -> 403
        return isinstance(detail, str) and "invalid jwt" in detail.lower()

    def refresh(self, seen_gen: int) -> None:
        with self.refresh_lock:
            with self.lock:
                if self.gen != seen_gen:
                    return       # another thread already logged in again
            self.login()

    def auth_flow(self, request: httpx.Request) -> Flow:
        with self.lock:
            gen = self.gen
        self.apply(request)
        response = yield request
        refreshed = False
        while self.is_failure(response):
            if self.ambiguous_403:
                # ask a read-only endpoint whether we are logged in at all
                if self.trusted():
                    break                    # a real permission error (the caller's 403)
                probe = self.t.client.build_request("GET", self.probe_url, params={"limit": 1})
                self.apply(probe)
                if (yield probe).status_code < 300:
                    self.proved_by_probe()
                    break
            if not self.refreshable() or refreshed:
                raise self.fail()
            refreshed = True
            self.refresh(gen)
            with self.lock:
                gen = self.gen
            self.apply(request)
            response = yield request
        if response.status_code < 300:
            self.proven = True

    def proved_by_probe(self) -> None:
        self.proven = True       # basic credentials do not expire: no need to ask again


class BearerAuth(RestAuth):
    """auth: bearer, a static token from token_env."""

    def apply(self, request: httpx.Request) -> None:
        assert self.creds.static_token is not None
        request.headers["Authorization"] = f"Bearer {self.creds.static_token.value}"

    def secrets(self) -> list[Secret]:
        return [self.creds.static_token] if self.creds.static_token else []


class BasicAuth(RestAuth):
    """auth: basic (and the AF2 session's fallback)."""

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = self.creds.basic_header()


class JwtAuth(RestAuth):
    """auth: password-token on REST v2: a JWT from POST /auth/token, renewed on failure."""

    token: Secret | None = None

    def apply(self, request: httpx.Request) -> None:
        with self.lock:
            tok = self.token
        if tok is not None:
            request.headers["Authorization"] = f"Bearer {tok.value}"

    def refreshable(self) -> bool:
        return True

    def secrets(self) -> list[Secret]:
        return [self.token] if self.token else []

    def login(self) -> None:
        """POST {url}/auth/token -> access_token (AF3 SimpleAuthManager / FAB auth manager)."""
        c, url = self.creds, self.t.url
        assert c.username is not None and c.password is not None
        resp, data = self.t.send("POST", f"{url}/auth/token",
                                 json_body={"username": c.username, "password": c.password.value},
                                 allow=(400, 401, 403, 404, 422))
        if resp.status_code in (400, 401, 403, 422):
            raise self.fail()
        if resp.status_code == 404:
            raise self.t.error(f"{self.t.name}: {url}/auth/token not found; use auth: basic "
                               "or bearer for this server", fatal=True)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise self.t.error(f"{self.t.name}: POST /auth/token returned no access_token",
                               fatal=True)
        with self.lock:
            self.token = Secret(token)
            self.gen += 1


class SessionAuth(BasicAuth):
    """auth: password-token on REST v1: the webserver's login session, else HTTP basic."""

    session = False              # authenticated by a login-form session cookie

    def apply(self, request: httpx.Request) -> None:
        if not self.session:
            super().apply(request)
            return
        # the cookie of the current session (a re-sent request may carry a dead one)
        request.headers.pop("Cookie", None)
        request.headers.pop("Authorization", None)
        self.t.client.cookies.set_cookie_header(request)

    def refreshable(self) -> bool:
        return self.session

    def trusted(self) -> bool:
        return self.proven and not self.session

    def proved_by_probe(self) -> None:
        if not self.session:
            self.proven = True

    def login(self) -> None:
        """Log in through the login form once; use its cookie if /api/v1 accepts it.
        429 is allowed (not retried): AF2 rate-limits its login form (default 5 per 40 s
        per client); the session is only an optimisation, so fall back to basic at once."""
        c, url, t = self.creds, self.t.url, self.t
        assert c.username is not None and c.password is not None
        ok = False
        try:
            t.client.cookies.clear()       # a logged-in /login/ redirects instead of a form
            page, _ = t.send("GET", f"{url}/login/", expect_json=False,
                             allow=(302, 401, 403, 404, 405, 429))
            m = (re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page.text)
                 or re.search(r'<input[^>]*value="([^"]+)"[^>]*name="csrf_token"', page.text))
            if page.status_code == 200 and m:
                posted, _ = t.send("POST", f"{url}/login/", expect_json=False,
                                   form={"username": c.username, "password": c.password.value,
                                         "csrf_token": m.group(1)},
                                   allow=(200, 302, 303, 400, 401, 403, 429))
                if posted.status_code in (302, 303):     # FAB redirects after a login
                    check, _ = t.send("GET", self.probe_url, params={"limit": 1},
                                      expect_json=False, allow=range(300, 600))
                    ok = check.status_code == 200
        except Fatal:
            raise
        except (BackendError, httpx.HTTPError) as e:
            log.debug("%s: session login failed (%s)", t.name, t.scrub(str(e)))
        with self.lock:
            self.session = ok
            self.gen += 1
            self.proven = False      # basic credentials, if we fall back, are not proven
        if not ok:
            t.client.cookies.clear()
            log.debug("%s: no AF2 login session; using HTTP basic auth", t.name)


def auth_for(t: Transport, creds: Credentials, password_flavour: str, *, ambiguous_403: bool,
             probe_url: str, fail: Callable[[], BackendError]) -> RestAuth:
    """The auth object for `creds.mode`; password-token uses the dialect's flavour."""
    kinds = {"none": RestAuth, "bearer": BearerAuth, "basic": BasicAuth,
             "password-token": JwtAuth if password_flavour == "jwt" else SessionAuth}
    return kinds[creds.mode](t, creds, ambiguous_403=ambiguous_403, probe_url=probe_url,
                             fail=fail)
