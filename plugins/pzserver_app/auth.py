"""Authentication of every PZ Server request: API tokens for clients, Airflow's JWT for the pages.

Airflow mounts plugin apps without its own authentication, so every route of this app depends on
``current_user``, which accepts, in this order:

- ``Authorization: Token <key>``: an API token of the registry (``pz token create USER``), as the ``pzserver``
  client sends;
- ``Authorization: Bearer <jwt>``: a JWT from Airflow's ``POST /auth/token``;
- the Airflow UI's session cookie (``_token``), which the pages inside the Airflow UI carry.

A browser sends the cookie with every request to this site, also those another site makes it send (a link, an
image, a form), whatever their method. So the routes that change state take ``ChangingUser`` instead of
``CurrentUser``, and a cookie-authenticated request to them must come from a page of this site (cross-site
request forgery): its ``Origin`` must be this origin; without one, ``Sec-Fetch-Site`` must be ``same-origin``
or ``none`` (typed by the user); without either, the ``Referer`` must be of this origin; a request that says
none of them is refused. Token and Bearer calls carry their credentials themselves and are not concerned: the
``pzserver`` client stops a process with a GET and a token.

A JWT is checked by Airflow's auth manager (signature, expiry, revocation) and its user is mapped to the
registry user of the same name, created on first sight; Airflow users the auth manager lets change connections
(the operators: Op and Admin, in FAB as in the simple auth manager) start as registry admins. Not "change the
configuration": FAB gives that right to no role, so no FAB user would be an admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from pzlib.registry import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound, PermissionDenied, User
from pzserver_app.context import ServerContext, get_context

AIRFLOW_SESSION_COOKIE = "_token"
"""Name of the Airflow UI's JWT cookie (``COOKIE_NAME_JWT_TOKEN`` in Airflow's auth managers)."""

_SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})
"""``Sec-Fetch-Site`` values of a request a page of this site made, or the user typed."""


@dataclass(frozen=True)
class AirflowIdentity:
    """Who an Airflow JWT says the caller is."""

    username: str
    is_admin: bool
    """The auth manager lets this user change Airflow's connections (Op and Admin)."""


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
        username=user.get_name(), is_admin=bool(manager.is_authorized_connection(method="PUT", user=user))
    )


async def current_user(request: Request, context: Annotated[ServerContext, Depends(get_context)]) -> User:
    """FastAPI dependency: the registry user making the request.

    Raises
    ------
    AuthenticationFailed
        No credentials, or credentials that are not valid (HTTP 401).
    PermissionDenied
        An Airflow user name the registry cannot hold.
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
        identity = await request.app.state.airflow_identity(cookie)
        return await run_in_threadpool(_registry_user, context, identity)
    raise AuthenticationFailed(
        "authentication required: send 'Authorization: Token <API token>' (ask an admin for one: "
        "'pz token create USER') or log in to Airflow"
    )


CurrentUser = Annotated[User, Depends(current_user)]
"""Handler parameter: the authenticated registry user."""


async def changing_user(request: Request, user: CurrentUser) -> User:
    """FastAPI dependency of the routes that change state: ``current_user``, when the request may change things.

    Raises
    ------
    PermissionDenied
        A request authenticated by the Airflow UI's cookie that does not come from a page of this site.
    """
    if not request.headers.get("authorization", "").strip():
        _check_same_origin(request)
    return user


ChangingUser = Annotated[User, Depends(changing_user)]
"""Handler parameter of a route that changes state: the registry user, on a request that may change things."""


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
    expected = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    referer = request.headers.get("referer")
    if origin is not None:
        source, same = origin, origin.lower() == expected
    elif fetch_site is not None:
        source, same = f"a {fetch_site} page", fetch_site.lower() in _SAME_ORIGIN_FETCHES
    elif referer is not None:
        source = _origin_of(referer) or "a page of unknown origin"
        same = source.lower() == expected
    else:
        raise PermissionDenied(
            f"a change with the Airflow session of {expected} must say which page it comes from (Origin, "
            "Sec-Fetch-Site or Referer header); send an API token instead"
        )
    if not same:
        raise PermissionDenied(
            f"a change from {source} may not use the Airflow session of {expected}; send an API token instead"
        )


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL; empty for one that does not parse."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
