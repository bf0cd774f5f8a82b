"""Keep credentials out of what a sweep logs, saves and prints.

A sweep spec is logged to MLflow (flat params and ``spec.yaml``), saved beside the Ray
results (``sweep_spec.yaml``) and shipped to Ray Jobs in their metadata, so a spec must
never hold a secret: :mod:`tune.spec` refuses a tracking URI that carries one
(:func:`has_credentials`) and shows it only redacted (:func:`redact_uri`). Credentials
go by environment instead, where MLflow, boto3 and Ray read them:
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``,
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``RAY_AUTH_TOKEN``.

Example:
    >>> redact_uri("https://alice:s3cret@mlflow.example.com:5000/?token=abc&x=1")
    'https://***@mlflow.example.com:5000/?token=***&x=1'
    >>> has_credentials("http://127.0.0.1:5000"), has_credentials("http://a:b@host")
    (False, True)
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["MASK", "SECRET_ENV_VARS", "has_credentials", "keep_credentials_out_of_ray_logs",
           "redact_uri"]

#: What stands in for a secret.
MASK = "***"
#: Environment variables that hold credentials a sweep may use (never to be logged).
SECRET_ENV_VARS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_ACCESS_KEY_ID",
                   "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN",
                   "PGPASSWORD", "MYSQL_PWD")
# What Ray Tune copies from the driver's environment into every trial actor's runtime_env.
_RAY_TUNE_COPIES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN",
                    "AWS_SESSION_TOKEN")
# Query keys whose values are secrets (``?password=``, ``?token=``, ``?X-Amz-Signature=``).
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|credential|signature|session", re.I)


def _split(uri: str) -> urllib.parse.SplitResult | None:
    try:
        return urllib.parse.urlsplit(uri)
    except ValueError:  # e.g. an unbalanced '[' in the host
        return None


def _secret_query_keys(query: str) -> list[str]:
    return [key for key, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)
            if _SECRET_KEY.search(key)]


def has_credentials(uri: str) -> bool:
    """Whether ``uri`` carries a user name, password or secret query value.

    A URI that does not parse counts as carrying one when it holds an ``@`` (better to
    refuse it than to log it).
    """
    parts = _split(uri)
    if parts is None:
        return "@" in uri
    return "@" in parts.netloc or bool(_secret_query_keys(parts.query))


def redact_uri(uri: str) -> str:
    """``uri`` with its user info and the values of secret query keys replaced by ``***``.

    Anything that does not parse as a URI but holds an ``@`` is masked up to its last
    ``@``. Other text comes back unchanged.
    """
    parts = _split(uri)
    if parts is None:
        return MASK + uri[uri.rindex("@"):] if "@" in uri else uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + netloc[netloc.rindex("@"):]
    query = parts.query
    if _secret_query_keys(query):
        query = "&".join(
            f"{key}={MASK}" if _SECRET_KEY.search(urllib.parse.unquote_plus(key)) else item
            for item in query.split("&")
            for key in [item.split("=", 1)[0]])
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def keep_credentials_out_of_ray_logs() -> None:
    """Stop Ray Tune from copying the driver's AWS credentials into each trial's runtime_env.

    Ray Tune (``ray.tune.execution.class_cache``) puts ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY`` and the session tokens of the driver's environment into the
    ``runtime_env`` of every trial actor, which Ray's runtime_env agent then writes in clear
    text to ``runtime_env_agent.log`` on every node, and the dashboard shows with the actor.
    Call this in the driver before the Tuner starts trials. Trials still get credentials the
    way the nodes are given them (on one machine: the environment Ray was started with; on
    a cluster: an instance role, IRSA or the nodes' environment).

    Example:
        >>> keep_credentials_out_of_ray_logs()   # doctest: +SKIP
    """
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE = (set(class_cache.ENV_VARS_TO_PROPAGATE)
                                         - set(_RAY_TUNE_COPIES))
