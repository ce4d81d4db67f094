"""The environment of a harness Airflow's processes: its home, SQLite DB, auth (AF3 simple
auth manager + JWT, AF2 basic auth), executor and parsing intervals, and the caller's extras."""

from __future__ import annotations

import base64
import os
import secrets

from testkit.procs import _clean_environ, free_port


def airflow_env(server) -> dict[str, str]:
    """os.environ minus any Airflow/Python setup of the caller, plus this server's config."""
    assert server.home is not None and server.venv is not None
    env = _clean_environ()
    env.update({
        "AIRFLOW_HOME": str(server.home),
        "VIRTUAL_ENV": str(server.venv),
        "PATH": f"{server.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(server.dags_folder),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{server.db_path}",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # gunicorn >= 23 opens a control socket in ~/.gunicorn shared by every server
        "GUNICORN_CMD_ARGS": "--no-control-socket",
    })
    if server.major == 3:
        env.update({
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager"
                ".SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{server.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE":
                str(server.home / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{server.url}/execution/",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        })
        if server.jwt_expiration_time is not None:
            env["AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME"] = str(server.jwt_expiration_time)
            # the default leeway (10 s) would keep an expired token valid that long
            env["AIRFLOW__API_AUTH__JWT_LEEWAY"] = str(server.jwt_leeway or 0)
        elif server.jwt_leeway is not None:
            env["AIRFLOW__API_AUTH__JWT_LEEWAY"] = str(server.jwt_leeway)
    else:
        env.update({
            "AIRFLOW__API__AUTH_BACKENDS":
                "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session",
            "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "600",
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",   # the only one on SQLite
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
        })
    env.update(server.extra_env)
    return env
