"""Authentication of every PZ Server request: API tokens for clients, Airflow's JWT for the pages.

Airflow mounts plugin apps without its own authentication, so every route of this app depends on
``current_user``, which accepts, in this order:

- ``Authorization: Token <key>``: an API token of the registry (``pz token create USER``), as the ``pzserver``
  client sends;
- ``Authorization: Bearer <jwt>``: a JWT from Airflow's ``POST /auth/token``;
- the Airflow UI's session cookie (``_token``), which the pages inside the Airflow UI carry. A state-changing
  request authenticated by the cookie must come from the same origin (cross-site request forgery).

A JWT is checked by Airflow's auth manager (signature, expiry, revocation) and its user is mapped to the
registry user of the same name, created on first sight; Airflow users the auth manager lets change Airflow's
configuration (Admin in FAB; Op and Admin in the simple auth manager) start as registry admins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from pzlib.registry import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound, PermissionDenied, User
from pzserver_app.context import ServerContext, get_context

AIRFLOW_SESSION_COOKIE = "_token"
"""Name of the Airflow UI's JWT cookie (``COOKIE_NAME_JWT_TOKEN`` in Airflow's auth managers)."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AirflowIdentity:
    """Who an Airflow JWT says the caller is."""

    username: str
    is_admin: bool
    """The auth manager lets this user change Airflow's configuration."""


AirflowTokenResolver = Callable[[str], Awaitable[AirflowIdentity]]
"""Checks an Airflow JWT and says whose it is; raises ``AuthenticationFailed`` when it is not valid."""


async def airflow_identity(token: str) -> AirflowIdentity:
    """Check an Airflow JWT with the api-server's auth manager and name its user.

    Raises
    ------
    AuthenticationFailed
        The token is malformed, badly signed, expired or revoked, or no auth manager runs in this process.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from jwt import InvalidTokenError

    try:
        manager = get_auth_manager()
    except RuntimeError as error:
        raise AuthenticationFailed("Airflow logins are not available in this process; use an API token") from error
    try:
        user = await manager.get_user_from_token(token)
    except InvalidTokenError as error:
        raise AuthenticationFailed(f"the Airflow login token is not valid ({error}); log in again") from error
    return AirflowIdentity(
        username=user.get_name(), is_admin=bool(manager.is_authorized_configuration(method="PUT", user=user))
    )


async def current_user(request: Request, context: Annotated[ServerContext, Depends(get_context)]) -> User:
    """FastAPI dependency: the registry user making the request.

    Raises
    ------
    AuthenticationFailed
        No credentials, or credentials that are not valid (HTTP 401).
    PermissionDenied
        A cookie-authenticated change from another origin, or an Airflow user name the registry cannot hold.
    """
    header = request.headers.get("authorization", "").strip()
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "token":
            return await run_in_threadpool(context.registry.authenticate, credentials.strip())
        if scheme.lower() == "bearer":
            identity = await request.app.state.airflow_identity(credentials.strip())
            return await run_in_threadpool(_registry_user, context, identity)
        raise AuthenticationFailed(
            f"unsupported Authorization scheme {scheme!r}; send 'Token <API token>' or 'Bearer <Airflow JWT>'"
        )
    cookie = request.cookies.get(AIRFLOW_SESSION_COOKIE)
    if cookie:
        _check_same_origin(request)
        identity = await request.app.state.airflow_identity(cookie)
        return await run_in_threadpool(_registry_user, context, identity)
    raise AuthenticationFailed(
        "authentication required: send 'Authorization: Token <API token>' (ask an admin for one: "
        "'pz token create USER') or log in to Airflow"
    )


CurrentUser = Annotated[User, Depends(current_user)]
"""Handler parameter: the authenticated registry user."""


def _registry_user(context: ServerContext, identity: AirflowIdentity) -> User:
    try:
        return context.registry.get_user(identity.username)
    except NotFound:
        pass
    try:
        return context.registry.create_user(identity.username, is_admin=identity.is_admin)
    except AlreadyExists:  # another request created it first
        return context.registry.get_user(identity.username)
    except InvalidInput as error:
        raise PermissionDenied(f"Airflow user {identity.username!r} cannot use the PZ Server: {error}") from error


def _check_same_origin(request: Request) -> None:
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    expected = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != expected:
        raise PermissionDenied(
            f"a change from {origin} may not use the Airflow session of {expected}; send an API token instead"
        )
