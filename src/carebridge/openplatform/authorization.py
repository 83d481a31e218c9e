"""The OAuth2 / SMART on FHIR authorization server, on Authlib's grants and endpoints (docs/openplatform.md).

Grants: authorization code with PKCE (S256 only) for patient-facing apps (public clients), refresh tokens
with rotation, client credentials with ``private_key_jwt`` (SMART Backend Services) for backend apps;
endpoints: RFC 7009 revocation and RFC 7662 introspection.

Authlib's server is synchronous: it asks for clients, codes and tokens through plain method calls. A request
first runs it on the event loop itself: an approved app is in the per-worker client cache and a client
credentials request needs no database until the token is saved, which waits until Authlib has answered
(``_DEFERRED_SAVE``). When a hook does need the database (a code, a refresh token, a client not cached), it
raises ``NeedsThread`` and the request runs again from the start in a worker thread (``anyio.to_thread``),
where the storage hooks run their database work back on the event loop (``anyio.from_thread``), each in its
own transaction, with the races handled by the conditional statements in ``tokens``. Nothing is written before
``NeedsThread``, so running again is safe. A thread hand-off costs about 100 µs here, and two or more per
request made token issuance thread-bound (docs/performance.md).
"""

from __future__ import annotations

import contextvars
import functools
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
import orjson
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from carebridge.config import Settings
from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.openplatform import scopes as smart
from carebridge.openplatform import tokens
from carebridge.openplatform.models import AppKind, AppStatus, OAuthToken

T = TypeVar("T")
# The platform's base URL for this request (the issuer; assertions' audience is its token endpoint).
ISSUER: contextvars.ContextVar[str] = contextvars.ContextVar("oauth_issuer", default="")
# The token endpoint records a client assertion's jti with the token it gives (one transaction, not two); the
# other endpoints record it when they read it. Set per request by the endpoint (``oauth_api``).
DEFER_JTI: contextvars.ContextVar[bool] = contextvars.ContextVar("oauth_defer_jti", default=False)
_ASSERTION: contextvars.ContextVar[tuple[str, str, datetime] | None] = contextvars.ContextVar(
    "oauth_assertion", default=None
)
# Set while Authlib runs on the event loop: a hook that needs the database raises NeedsThread.
_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("oauth_inline", default=False)
# A token to save once Authlib has answered on the event loop (the save's arguments), or None.
_DEFERRED_SAVE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("oauth_deferred", default=None)
# SMART asks servers to support RS384 and ES384 for client assertions; RS256 and ES256 are common too.
ASSERTION_ALGORITHMS = ["RS384", "ES384", "RS256", "ES256"]
MAX_ASSERTION_LIFETIME = 300  # SMART Backend Services: exp no more than five minutes after now


_KEY_SETS: dict[tuple[str, str], KeySet] = {}


def _key_set(app: tokens.Client) -> KeySet:
    """The app's JWK Set, parsed once per worker (keyed by its content, so a new set is parsed again)."""
    jwks = app.jwks or {"keys": []}
    key = (app.client_id, orjson.dumps(jwks, option=orjson.OPT_SORT_KEYS).decode())
    found = _KEY_SETS.get(key)
    if found is None:
        if len(_KEY_SETS) > 10_000:
            _KEY_SETS.clear()
        found = _KEY_SETS[key] = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    return found


class NeedsThread(Exception):
    """Authlib, running on the event loop, reached a hook that needs the database: run it again in a thread."""


class Client(ClientMixin):
    def __init__(self, app: tokens.Client) -> None:
        self.app = app

    def get_client_id(self) -> str:
        return self.app.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.app.redirect_uris[0] if len(self.app.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # the grants check the requested scopes themselves (ScopeCheck): what is left is allowed
        return " ".join(smart.allowed(list(self.app.scopes), scope_to_list(scope) or []))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.app.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no app has a secret: patient-facing apps are public, backend apps sign assertions

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("none" if self.app.kind == AppKind.patient_facing else "private_key_jwt")

    def check_response_type(self, response_type: str) -> bool:
        return self.app.kind == AppKind.patient_facing and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.app.kind == AppKind.patient_facing:
            return grant_type in ("authorization_code", "refresh_token")
        return grant_type == "client_credentials"


@dataclass(frozen=True, slots=True)
class Consent:
    """The resource owner on the consent page: the patient's account and the patient they chose."""

    user_id: uuid.UUID
    patient_id: uuid.UUID | None


class Code:
    def __init__(self, row: Any) -> None:
        self.row = row
        self.user_id = row.user_id
        self.patient_id = row.patient_id

    def get_redirect_uri(self) -> str | None:
        return self.row.redirect_uri or None

    def get_scope(self) -> str:
        return self.row.scope


class Token:
    """A token row as Authlib's ``TokenMixin`` (refresh, revocation, introspection); ``kind`` says which of its
    two tokens was presented."""

    def __init__(self, row: OAuthToken, kind: str = "refresh_token") -> None:
        self.row = row
        self.kind = kind
        self.user_id = row.user_id
        self.patient_id = row.patient_id
        self.client_id: str | None = None

    @property
    def expires_at(self) -> datetime:
        if self.kind == "refresh_token" and self.row.refresh_expires_at is not None:
            return self.row.refresh_expires_at
        return self.row.access_expires_at

    def check_client(self, client: Client) -> bool:
        return self.row.app_id == client.app.id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - clock.now()).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at <= clock.now()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None

    def get_user(self) -> uuid.UUID | None:
        return self.row.user_id


class Payload(OAuth2Payload):
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in items:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class Request(OAuth2Request):
    """An HTTP request already read (query and form), so Authlib can work on it in a thread."""

    def __init__(
        self, method: str, uri: str, headers: dict[str, str], query: list[tuple[str, str]], form: list[tuple[str, str]]
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = Payload([*query, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class ScopeCheck:
    """Every requested scope is a SMART scope the app registered (or within one): never silently dropped."""

    request: Request

    def validate_requested_scope(self) -> None:
        requested = scope_to_list(self.request.payload.scope) or []
        if not requested:
            raise InvalidScopeError("ask for at least one scope (space separated, SMART v2)")
        registered = list(self.request.client.app.scopes)
        for scope in requested:
            if (why := smart.problem(scope)) is not None:
                raise InvalidScopeError(f"{scope!r}: {why}")
            if not any(smart.covers(r, scope) for r in registered):
                raise InvalidScopeError(f"{scope!r} is not among the scopes the app registered")


class S256Only(CodeChallenge):
    """PKCE is required, with S256 (SMART App Launch 2): ``plain`` and a missing challenge are refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: Code) -> str:
        return authorization_code.row.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: Code) -> str:
        return authorization_code.row.code_challenge_method


class AuthorizationCodeGrant(ScopeCheck, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    server: SmartAuthorizationServer

    def save_authorization_code(self, code: str, request: Request) -> None:
        consent: Consent = request.user  # the patient's decision on the consent page (grant_user)
        self.server.run(
            tokens.save_code,
            code=code,
            app=request.client.app,
            user_id=consent.user_id,
            patient_id=consent.patient_id,
            scope=request.scope,
            redirect_uri=request.payload.redirect_uri or "",
            code_challenge=request.payload.data["code_challenge"],
            code_challenge_method=request.payload.data["code_challenge_method"],
            ttl_seconds=self.server.settings.oauth_code_seconds,
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        row = self.server.run(tokens.claim_code, code=code, app_id=client.app.id)
        return Code(row) if row is not None else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        pass  # claimed (used_at) when it was read: a code works once even for two requests at the same time

    def authenticate_user(self, authorization_code: Code) -> Code:
        return authorization_code


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every use gives a new refresh token and retires the old one
    server: SmartAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        row = self.server.run(tokens.find_refresh, refresh_token=refresh_token)
        return Token(row) if row is not None else None

    def validate_token_request(self) -> None:
        super().validate_token_request()
        # the scope check passed: now retire the old token, once (the loser of a race gets invalid_grant)
        if not self.server.run(tokens.rotate, token_id=self.request.refresh_token.row.id):
            raise InvalidGrantError("the refresh token was used already")

    def authenticate_user(self, refresh_token: Token) -> Token:
        return refresh_token

    def revoke_old_credential(self, refresh_token: Token) -> None:
        pass  # done in validate_token_request, before the new token was made


class ClientCredentialsGrant(ScopeCheck, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]


class PrivateKeyJwt(JWTBearerClientAssertion):
    """``private_key_jwt`` (RFC 7523, SMART Backend Services): the app signs an assertion with a key from the
    JWK Set it registered; its ``jti`` works once."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: SmartAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [f"{ISSUER.get()}/oauth/token"]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=f"the client assertion is not valid: {exc.description}") from exc
        except ValueError as exc:  # e.g. no key in the set matches the assertion's kid
            raise InvalidClientError(description=f"the client assertion is not valid: {exc}") from exc
        exp = token.claims.get("exp")
        if isinstance(exp, int | float) and exp > clock.now().timestamp() + MAX_ASSERTION_LIFETIME + self.leeway:
            raise InvalidClientError(description="the client assertion's exp is more than five minutes away")
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
            raise InvalidClientError(description="jti must be a string of 1-200 characters")
        expires_at = datetime.fromtimestamp(float(claims["exp"]), tz=UTC)
        if DEFER_JTI.get():  # the unique key decides when the token is saved (AssertionReplayed)
            _ASSERTION.set((claims["sub"], jti, expires_at))
            return True
        return self.server.run(tokens.use_assertion, client_id=claims["sub"], jti=jti, expires_at=expires_at)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        return _key_set(client.app)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none", "private_key_jwt"]
    server: SmartAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        found = self.server.run(tokens.find_token, token=token_string, hint=token_type_hint)
        return Token(*found) if found is not None else None

    def revoke_token(self, token: Token, request: Request) -> None:
        # an access token and its refresh token are one grant: revoking either ends the whole family
        self.server.run(tokens.revoke_family, family_id=token.row.family_id)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["none", "private_key_jwt"]
    server: SmartAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        found = self.server.run(tokens.find_token, token=token_string, hint=token_type_hint, read_only=True)
        return Token(*found) if found is not None else None

    def check_permission(self, token: Token, client: Client, request: Request) -> bool:
        token.client_id = client.app.client_id
        return token.check_client(client)  # an app introspects only its own tokens

    def introspect_token(self, token: Token) -> dict[str, Any]:
        row = token.row
        body: dict[str, Any] = {
            "active": True,  # Authlib answers {"active": false} itself for expired and revoked tokens
            "client_id": token.client_id,
            "scope": row.scope,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "exp": int(token.expires_at.timestamp()),
            "iat": int(row.created_at.timestamp()),
            "iss": ISSUER.get(),
            "aud": f"{ISSUER.get()}/fhir/R4",
        }
        if row.user_id is not None:
            body["sub"] = str(row.user_id)
        if row.patient_id is not None:
            body["patient"] = str(row.patient_id)
        return body


class SmartAuthorizationServer(AuthorizationServer):
    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__()
        self.db = db
        self.settings = settings
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: f"{tokens.ACCESS_PREFIX}{secrets.token_urlsafe(32)}",
                refresh_token_generator=lambda **_: f"{tokens.REFRESH_PREFIX}{secrets.token_urlsafe(32)}",
                expires_generator=self._expires_in,
            ),
        )
        self.register_client_auth_method("private_key_jwt", PrivateKeyJwt(self))
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    # --- the bridge between Authlib's thread and the event loop ---------------------------------------------

    def run(self, fn: Callable[..., Awaitable[T]], *, read_only: bool = False, **kwargs: Any) -> T:
        """Run ``fn(session, **kwargs)`` in its own transaction on the event loop, from Authlib's thread."""

        if _INLINE.get():
            raise NeedsThread(fn.__name__)

        async def call() -> T:
            return await self._call(fn, read_only=read_only, **kwargs)

        return anyio.from_thread.run(call)

    async def _call(
        self, fn: Callable[..., Awaitable[T]], *, read_only: bool = False, single: bool = False, **kwargs: Any
    ) -> T:
        if read_only:
            async with self.db.read() as session:
                return await fn(session, **kwargs)
        if single:  # one atomic statement (a client-credentials token with its jti): no BEGIN / COMMIT
            async with self.db.single_statement() as session:
                return await fn(session, **kwargs)
        async with self.db.transaction() as session:
            return await fn(session, **kwargs)

    async def respond(self, method: Callable[..., T], *args: Any) -> T:
        """Call one of Authlib's server methods: on the event loop when its hooks need no database, else in a
        worker thread (the context, with ISSUER, goes along). The last argument is the OAuth request."""
        inline = _INLINE.set(True)
        deferred = _DEFERRED_SAVE.set(None)
        try:
            answer = method(*args)
            save = _DEFERRED_SAVE.get()
        except NeedsThread:
            save = None
            answer = None
        finally:
            _INLINE.reset(inline)
            _DEFERRED_SAVE.reset(deferred)
        if answer is None:
            return await anyio.to_thread.run_sync(functools.partial(method, *args))
        if save is not None:
            try:
                await self._call(tokens.save_token, single=True, **save)
            except tokens.AssertionReplayed:
                return self.handle_error_response(args[-1], InvalidClientError(description="JWT ID is used before."))
        return answer

    # --- what Authlib asks of a server ------------------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or len(client_id) > 40:
            return None
        app = tokens.CLIENTS.get(client_id) or self.run(tokens.client, client_id=client_id, read_only=True)
        if app is None:
            return None
        if app.status != AppStatus.approved:
            raise InvalidClientError(description=f"the app is {app.status.value}, not approved")
        return Client(app)

    def generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        granted = scope_to_list(scope) or []
        # SMART: a refresh token only for offline_access or online_access
        include_refresh_token = include_refresh_token and bool({"offline_access", "online_access"} & set(granted))
        token = super().generate_token(grant_type, client, user, scope, expires_in, include_refresh_token)
        patient_id = getattr(user, "patient_id", None)
        if patient_id is not None and "launch/patient" in granted:
            token["patient"] = str(patient_id)  # the launch context (a FHIR Patient id)
        return token

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        user = request.user
        code = request.authorization_code
        previous = request.refresh_token
        try:
            self._save(token, request, user, code, previous)
        except tokens.AssertionReplayed:
            raise InvalidClientError(description="JWT ID is used before.") from None

    def _save(self, token: dict[str, Any], request: Request, user: Any, code: Any, previous: Any) -> None:
        save = dict(
            token=token,
            app=request.client.app,
            user_id=getattr(user, "user_id", None),
            patient_id=getattr(user, "patient_id", None),
            family_id=previous.row.family_id if previous is not None else None,
            code_id=code.row.id if code is not None else None,
            refresh_ttl=timedelta(days=self.settings.oauth_refresh_token_days),
            assertion=_ASSERTION.get() if DEFER_JTI.get() else None,
        )
        if _INLINE.get() and code is None and previous is None:
            _DEFERRED_SAVE.set(save)  # client credentials: saved on the event loop once Authlib has answered
            return
        self.run(tokens.save_token, **save)

    def validate_requested_scope(self, scope: str | None) -> None:
        pass  # per grant (ScopeCheck), against the app's registration

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def _expires_in(self, client: Client, grant_type: str) -> int:
        if grant_type == "client_credentials":
            return self.settings.oauth_backend_token_seconds
        return self.settings.oauth_access_token_seconds
