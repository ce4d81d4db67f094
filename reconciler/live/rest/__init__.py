"""The airflow-api backend's parts (the backend itself is reconciler.live.airflow_api):
errors (bounded bodies, one-line errors), transport (one httpx client: whole-request deadline,
byte cap, no redirects, retries), auth (httpx.Auth objects: basic, bearer, JWT with re-login,
AF2 session), dialect (what differs between REST v1 and v2), config, reads and writes."""
