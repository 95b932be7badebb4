"""Security dependencies, as ``fastapi.security`` has them.

Each scheme is a callable dependency (``Depends(OAuth2PasswordBearer(...))``)
that reads the request and either returns the credentials or answers 401
(``auto_error=False``: returns None instead). Each carries ``model`` (its
OpenAPI security scheme) and ``scheme_name``: a route that depends on one,
directly or through other dependencies, lists it under ``security`` in the
OpenAPI document, and the scheme appears in ``components.securitySchemes``.
``Security(dep, scopes=[...])`` adds OAuth2 scopes; a dependency that declares
a ``SecurityScopes`` parameter receives the scopes of the ``Security`` chain
that leads to it.

The credentials classes (``HTTPBasicCredentials``,
``HTTPAuthorizationCredentials``) are plain classes with the same attributes
as FastAPI's pydantic models (pydantic is not needed).
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Annotated, Any

from catzilla.exceptions import HTTPException
from catzilla.params import Form, Security
from catzilla.request import Request

__all__ = [
    "APIKeyCookie",
    "APIKeyHeader",
    "APIKeyQuery",
    "HTTPAuthorizationCredentials",
    "HTTPBasic",
    "HTTPBasicCredentials",
    "HTTPBearer",
    "HTTPDigest",
    "OAuth2",
    "OAuth2AuthorizationCodeBearer",
    "OAuth2PasswordBearer",
    "OAuth2PasswordRequestForm",
    "OAuth2PasswordRequestFormStrict",
    "OpenIdConnect",
    "Security",
    "SecurityBase",
    "SecurityScopes",
]


def get_authorization_scheme_param(authorization_header_value: str | None) -> tuple[str, str]:
    """``"Bearer abc"`` -> ``("Bearer", "abc")``; ``("", "")`` for no header."""
    if not authorization_header_value:
        return "", ""
    scheme, _, param = authorization_header_value.partition(" ")
    return scheme, param.strip()


class _Credentials:
    __slots__: tuple[str, ...] = ()

    def __init__(self, **values: str) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"

    def model_dump(self) -> dict[str, str]:
        return {n: getattr(self, n) for n in self.__slots__}


class HTTPBasicCredentials(_Credentials):
    """What ``HTTPBasic`` returns: ``username`` and ``password``."""

    __slots__ = ("password", "username")
    username: str
    password: str

    def __init__(self, *, username: str, password: str) -> None:
        super().__init__(username=username, password=password)


class HTTPAuthorizationCredentials(_Credentials):
    """What ``HTTPBearer`` and ``HTTPDigest`` return: the header's ``scheme`` and ``credentials``."""

    __slots__ = ("credentials", "scheme")
    scheme: str
    credentials: str

    def __init__(self, *, scheme: str, credentials: str) -> None:
        super().__init__(scheme=scheme, credentials=credentials)


class SecurityBase:
    """A security scheme: ``model`` is its OpenAPI security scheme object."""

    model: dict[str, Any]
    scheme_name: str
    auto_error: bool


def _model(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _unauthorized(authenticate: str) -> HTTPException:
    return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": authenticate})


# -- API keys ----------------------------------------------------------------------------


class APIKeyBase(SecurityBase):
    def __init__(self, location: str, name: str, description: str | None, scheme_name: str | None, auto_error: bool):
        self.model = _model(type="apiKey", description=description, **{"in": location}, name=name)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error
        self.name = name

    def make_not_authenticated_error(self) -> HTTPException:
        return _unauthorized("APIKey")

    def check_api_key(self, api_key: str | None) -> str | None:
        if not api_key:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return api_key


class _APIKeyIn(APIKeyBase):
    """An API key read from one place of the request: ``location``, under ``name``."""

    location: str

    def __init__(
        self, *, name: str, scheme_name: str | None = None, description: str | None = None, auto_error: bool = True
    ) -> None:
        super().__init__(self.location, name, description, scheme_name, auto_error)

    def read(self, request: Request) -> str | None:
        raise NotImplementedError

    def __call__(self, request: Request) -> str | None:
        return self.check_api_key(self.read(request))


class APIKeyQuery(_APIKeyIn):
    """An API key in the query string parameter ``name``."""

    location = "query"

    def read(self, request: Request) -> str | None:
        return request.query_params.get(self.name)


class APIKeyHeader(_APIKeyIn):
    """An API key in the header ``name``."""

    location = "header"

    def read(self, request: Request) -> str | None:
        return request.headers.get(self.name)


class APIKeyCookie(_APIKeyIn):
    """An API key in the cookie ``name``."""

    location = "cookie"

    def read(self, request: Request) -> str | None:
        return request.cookies.get(self.name)


# -- HTTP authentication ---------------------------------------------------------------------


class HTTPBase(SecurityBase):
    def __init__(
        self,
        *,
        scheme: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _model(type="http", description=description, scheme=scheme)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_authenticate_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": str(self.model["scheme"]).title()}

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers=self.make_authenticate_headers())

    def __call__(self, request: Request) -> Any:
        authorization = request.headers.get("Authorization")
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials):
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)


class HTTPBasic(HTTPBase):
    """HTTP Basic authentication (RFC 7617): returns ``HTTPBasicCredentials``."""

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        realm: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(scheme="basic", scheme_name=scheme_name, description=description, auto_error=auto_error)
        self.realm = realm

    def make_authenticate_headers(self) -> dict[str, str]:
        if self.realm:
            return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}
        return {"WWW-Authenticate": "Basic"}

    def __call__(self, request: Request) -> HTTPBasicCredentials | None:
        authorization = request.headers.get("Authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        try:
            data = b64decode(param).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise self.make_not_authenticated_error() from exc
        username, separator, password = data.partition(":")
        if not separator:
            raise self.make_not_authenticated_error()
        return HTTPBasicCredentials(username=username, password=password)


class HTTPBearer(HTTPBase):
    """A bearer token in ``Authorization``: returns ``HTTPAuthorizationCredentials``."""

    def __init__(
        self,
        *,
        bearerFormat: str | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(scheme="bearer", scheme_name=scheme_name, description=description, auto_error=auto_error)
        if bearerFormat is not None:
            self.model["bearerFormat"] = bearerFormat

    def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        creds = super().__call__(request)
        if creds is not None and creds.scheme.lower() != "bearer":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return creds  # type: ignore[no-any-return]


class HTTPDigest(HTTPBase):
    """HTTP Digest (a stub, as FastAPI's): returns ``HTTPAuthorizationCredentials``."""

    def __init__(
        self, *, scheme_name: str | None = None, description: str | None = None, auto_error: bool = True
    ) -> None:
        super().__init__(scheme="digest", scheme_name=scheme_name, description=description, auto_error=auto_error)

    def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        creds = super().__call__(request)
        if creds is not None and creds.scheme.lower() != "digest":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return creds  # type: ignore[no-any-return]


# -- OAuth2 and OpenID Connect ------------------------------------------------------------------


class OAuth2(SecurityBase):
    def __init__(
        self,
        *,
        flows: dict[str, dict[str, Any]] | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _model(type="oauth2", description=description, flows=flows or {})
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_not_authenticated_error(self) -> HTTPException:
        return _unauthorized("Bearer")

    def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("Authorization")
        if not authorization:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return authorization

    def _bearer(self, request: Request) -> str | None:
        authorization = request.headers.get("Authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "bearer":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return param


def _flow(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class OAuth2PasswordBearer(OAuth2):
    """OAuth2's password flow: returns the bearer token of ``Authorization``."""

    def __init__(
        self,
        tokenUrl: str,
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
        refreshUrl: str | None = None,
    ) -> None:
        flows = {"password": _flow(refreshUrl=refreshUrl, scopes=scopes or {}, tokenUrl=tokenUrl)}
        super().__init__(flows=flows, scheme_name=scheme_name, description=description, auto_error=auto_error)

    def __call__(self, request: Request) -> str | None:
        return self._bearer(request)


class OAuth2AuthorizationCodeBearer(OAuth2):
    """OAuth2's authorization code flow: returns the bearer token of ``Authorization``."""

    def __init__(
        self,
        authorizationUrl: str,
        tokenUrl: str,
        refreshUrl: str | None = None,
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        flows = {
            "authorizationCode": _flow(
                authorizationUrl=authorizationUrl, refreshUrl=refreshUrl, scopes=scopes or {}, tokenUrl=tokenUrl
            )
        }
        super().__init__(flows=flows, scheme_name=scheme_name, description=description, auto_error=auto_error)

    def __call__(self, request: Request) -> str | None:
        return self._bearer(request)


class OpenIdConnect(SecurityBase):
    """OpenID Connect: returns the ``Authorization`` header."""

    def __init__(
        self,
        *,
        openIdConnectUrl: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _model(type="openIdConnect", description=description, openIdConnectUrl=openIdConnectUrl)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("Authorization")
        if not authorization:
            if self.auto_error:
                raise _unauthorized("Bearer")
            return None
        return authorization


class OAuth2PasswordRequestForm:
    """The form of OAuth2's password flow (``username``, ``password``, ``scope``...),
    as a dependency: ``form: Annotated[OAuth2PasswordRequestForm, Depends()]``."""

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form()],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        self.grant_type = grant_type
        self.username = username
        self.password = password
        self.scopes = scope.split()
        self.client_id = client_id
        self.client_secret = client_secret


class OAuth2PasswordRequestFormStrict(OAuth2PasswordRequestForm):
    """As ``OAuth2PasswordRequestForm``, with ``grant_type`` required."""

    def __init__(
        self,
        grant_type: Annotated[str, Form(pattern="^password$")],
        username: Annotated[str, Form()],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


class SecurityScopes:
    """Declare a parameter of this type in a dependency to receive the scopes
    that the ``Security(..., scopes=[...])`` chain leading to it asks for."""

    def __init__(self, scopes: list[str] | None = None) -> None:
        self.scopes: list[str] = scopes or []
        self.scope_str: str = " ".join(self.scopes)
