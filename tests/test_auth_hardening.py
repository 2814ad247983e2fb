"""Authentication under attack: password checks off the event loop, equal cost for unknown users, a
keyed cache of verified passwords, throttled failures (429), every bad JWT a 401, weak secrets
refused at start-up.

One app is built for the module; each test gives a copy of it an Authenticator of its own.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import ADMIN_TOKEN, app_settings
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from starlette.testclient import TestClient

from tams_server import auth, secret_strength
from tams_server.app import TamsApp, create_app
from tams_server.auth import Authenticator, CredentialStore, JwtSettings, JwtVerifier, new_token
from tams_server.config import Settings
from tams_server.secret_strength import WeakSecretError, check_settings, weakness
from tams_server.throttle import FailureThrottle, client_key

PASSWORD = "correct horse battery"
HMAC_SECRET = b"a shared secret of thirty-two bytes or more"
ROBOT = new_token()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def base_app() -> TamsApp:
    return create_app(app_settings())


@pytest.fixture(scope="module")
def store() -> CredentialStore:
    store = CredentialStore(None)
    store.add_password("editor", PASSWORD, ["read"])
    store.add_token("robot", ["read"], ROBOT)
    return store


def with_auth(base_app: TamsApp, authenticator: Authenticator) -> TamsApp:
    app = copy.copy(base_app)
    app.auth = authenticator
    return app


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each password scrypt is run on (counted, still computed)."""
    calls: list[str] = []
    real = auth._password_hash

    def counted(password: str, salt: bytes) -> str:
        calls.append(password)
        return real(password, salt)

    monkeypatch.setattr(auth, "_password_hash", counted)
    return calls


# --------------------------------------------------------------------------- off the event loop


def test_password_checks_run_off_the_loop_and_a_token_request_does_not_wait(
    base_app: TamsApp, store: CredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    running = [0, 0]  # now, at most

    def slow_hash(password: str, salt: bytes) -> str:
        with lock:
            running[0] += 1
            running[1] = max(running)
        gate.wait(timeout=3)  # on the event loop, this would stall every request for 3 s
        with lock:
            running[0] -= 1
        return "0" * 128

    monkeypatch.setattr(auth, "_password_hash", slow_hash)
    app = with_auth(base_app, Authenticator(store, password_concurrency=2))

    async def scenario() -> tuple[int, int, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            guesses = [
                asyncio.create_task(client.get("/service", headers=basic("editor", f"guess{i}"))) for i in range(8)
            ]
            for _ in range(200):
                if running[0] == 2:
                    break
                await asyncio.sleep(0.01)
            token_status = (await client.get("/service", headers=bearer(ROBOT))).status_code
            in_progress = running[0]  # the password checks are all still blocked
            gate.set()
            return token_status, in_progress, [r.status_code for r in await asyncio.gather(*guesses)]

    token_status, in_progress, guesses = asyncio.run(scenario())
    assert token_status == 200
    assert in_progress == 2
    assert guesses == [401] * 8
    assert running[1] == 2  # never more at once than password_concurrency


def test_password_checks_beyond_the_queue_get_503_and_tokens_still_pass(
    base_app: TamsApp, store: CredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of guesses from many addresses (no one of them throttled) cannot queue without bound."""
    gate = threading.Event()
    monkeypatch.setattr(auth, "_password_hash", lambda password, salt: gate.wait(timeout=3) and "0" * 128)
    app = with_auth(base_app, Authenticator(store, password_queue=4))

    async def scenario() -> tuple[list[int], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            guesses = [
                asyncio.create_task(client.get("/service", headers=basic("editor", f"guess{i}"))) for i in range(8)
            ]
            await asyncio.sleep(0.3)
            token_status = (await client.get("/service", headers=bearer(ROBOT))).status_code
            gate.set()
            return [r.status_code for r in await asyncio.gather(*guesses)], token_status

    guesses, token_status = asyncio.run(scenario())
    assert token_status == 200
    assert sorted(guesses) == [401] * 4 + [503] * 4


# --------------------------------------------------------------------------- equal cost, cache


def test_known_and_unknown_users_cost_one_scrypt_each(
    base_app: TamsApp, store: CredentialStore, scrypt_calls: list[str]
) -> None:
    client = TestClient(with_auth(base_app, Authenticator(store)))
    assert client.get("/flows", headers=basic("editor", "wrong one")).status_code == 401
    assert client.get("/flows", headers=basic("nobody", "wrong two")).status_code == 401
    assert scrypt_calls == ["wrong one", "wrong two"]


def test_verified_passwords_are_remembered_briefly_under_a_keyed_hash(
    scrypt_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CredentialStore(None)
    store.add_password("editor", PASSWORD, ["read"])
    scrypt_calls.clear()
    assert store.check_password("editor", PASSWORD).name == "editor"
    assert store.check_password("editor", PASSWORD).name == "editor"
    assert len(scrypt_calls) == 1
    # The cache keys are not a plain hash of name and password: reading them reveals nothing.
    [key] = store._verified
    plain = hashlib.sha256(f"editor\0{PASSWORD}".encode())
    assert key not in (plain.digest(), plain.hexdigest())
    other = CredentialStore(None)
    other.add_password("editor", PASSWORD, ["read"])
    other.check_password("editor", PASSWORD)
    assert list(other._verified) != [key]
    # Forgotten after the TTL, and whenever the credentials change.
    now = time.monotonic()
    monkeypatch.setattr(auth, "_clock", lambda: now + auth.VERIFIED_TTL_S + 1)
    scrypt_calls.clear()
    store.check_password("editor", PASSWORD)
    assert len(scrypt_calls) == 1
    store.add_token("robot", ["read"])
    store.check_password("editor", PASSWORD)
    assert len(scrypt_calls) == 2
    store.remove("editor")
    assert store.check_password("editor", PASSWORD) is None


# --------------------------------------------------------------------------- throttling


def throttled_app(base_app: TamsApp, store: CredentialStore, limit: int = 3) -> TamsApp:
    return with_auth(base_app, Authenticator(store, failure_limit=limit, failure_window_s=60))


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert set(response.json()) == {"type", "summary", "time"}


def test_wrong_passwords_from_one_client_are_throttled(
    base_app: TamsApp, store: CredentialStore, scrypt_calls: list[str]
) -> None:
    app = throttled_app(base_app, store)
    client = TestClient(app)
    for name in ("editor", "someone", "someone else"):  # rotating user names does not help
        assert client.get("/flows", headers=basic(name, "guess")).status_code == 401
    scrypt_calls.clear()
    assert_throttled(client.get("/flows", headers=basic("another", "guess")))
    assert_throttled(client.get("/flows", headers=basic("editor", PASSWORD)))
    assert scrypt_calls == []  # refused without running scrypt
    assert client.get("/flows", headers=bearer(ROBOT)).status_code == 200  # tokens are never throttled
    other = TestClient(app, client=("192.0.2.7", 40000))
    assert other.get("/flows", headers=basic("editor", PASSWORD)).status_code == 200
    # When the window has passed, the client may try again.
    later = time.monotonic() + 61
    app.auth.clients.clock = app.auth.users.clock = lambda: later
    assert client.get("/flows", headers=basic("editor", PASSWORD)).status_code == 200


def test_wrong_passwords_for_one_user_from_many_clients_are_throttled(
    base_app: TamsApp, store: CredentialStore
) -> None:
    app = throttled_app(base_app, store)
    for i in range(3):
        client = TestClient(app, client=(f"192.0.2.{i + 1}", 40000))
        assert client.get("/flows", headers=basic("editor", "guess")).status_code == 401
    fourth = TestClient(app, client=("192.0.2.99", 40000))
    assert_throttled(fourth.get("/flows", headers=basic("editor", "guess")))
    assert fourth.get("/flows", headers=basic("nobody", "guess")).status_code == 401  # other names may try


def test_throttling_memory_is_bounded() -> None:
    throttle = FailureThrottle(limit=3, window_s=60, max_keys=100)
    for i in range(10_000):
        throttle.failed(f"user{i}")
    assert len(throttle) == 100
    for _ in range(3):
        throttle.failed("user9999")
    assert throttle.retry_after("user9999") > 0  # the most recent keys are kept
    assert throttle.retry_after("user0") == 0


def test_throttling_keys_clients_by_address_and_ipv6_hosts_by_their_64() -> None:
    assert client_key(("192.0.2.1", 1)) == "192.0.2.1"
    assert client_key(("2001:db8::1", 1)) == client_key(("2001:db8::ffff:1", 2)) == "2001:db8::/64"
    assert client_key(("::ffff:192.0.2.1", 1)) == "192.0.2.1"
    assert client_key(None) is None


# --------------------------------------------------------------------------- JWTs: always 401


def _segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "svc", "iss": "https://idp.example", "aud": "tams", "exp": now + 300, "iat": now, **extra}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ec384": ec.generate_private_key(ec.SECP384R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


def _raw_rs256(key: rsa.RSAPrivateKey, header: Any, payload: bytes) -> str:
    """A token PyJWT would refuse to make: any header, any payload, a valid RS256 signature."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_segment(signature)}"


def _sign(key: Any, algorithm: str, kid: str | None = None, **claims: Any) -> str:
    return jwt.encode(_claims(**claims), key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def _jwt_app(base_app: TamsApp, store: CredentialStore, **jwt_settings: Any) -> TestClient:
    verifier = JwtVerifier(JwtSettings(issuer="https://idp.example", audience="tams", **jwt_settings))
    return TestClient(with_auth(base_app, Authenticator(store, verifier)))


@pytest.fixture(scope="module")
def pem_client(base_app: TamsApp, store: CredentialStore, keys: dict[str, Any], tmp_path_factory: Any) -> TestClient:
    path = tmp_path_factory.mktemp("jwt") / "key.pem"
    public = keys["rsa"].public_key()
    path.write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return _jwt_app(base_app, store, public_key=str(path))


@pytest.fixture(scope="module")
def jwks_client(base_app: TamsApp, store: CredentialStore, keys: dict[str, Any], tmp_path_factory: Any) -> TestClient:
    """A JWKS of mixed key types: RSA, EC P-256, Ed25519, an HMAC secret, an encryption key, junk."""

    def jwk(key: Any, algorithm: type[jwt.algorithms.Algorithm], **fields: str) -> dict[str, Any]:
        return {**json.loads(algorithm.to_jwk(key.public_key())), **fields}

    document = {
        "keys": [
            jwk(keys["rsa"], jwt.algorithms.RSAAlgorithm, kid="r"),
            jwk(keys["ec"], jwt.algorithms.ECAlgorithm, kid="e"),
            jwk(keys["ed"], jwt.algorithms.OKPAlgorithm, kid="o"),
            {"kty": "oct", "k": _segment(HMAC_SECRET), "kid": "h"},
            jwk(keys["rsa"], jwt.algorithms.RSAAlgorithm, kid="enc", use="enc"),
            {"kty": "RSA", "kid": "broken"},
            "not a key",
        ]
    }
    path = tmp_path_factory.mktemp("jwt") / "jwks.json"
    path.write_text(json.dumps(document))
    return _jwt_app(base_app, store, jwks=str(path))


def _bad_tokens(keys: dict[str, Any], kind: str) -> dict[str, str]:
    good_header = {"alg": "RS256", "typ": "JWT"}
    body = _segment(_claims(scope="read"))
    only_rsa = {"es256 against rsa": _sign(keys["ec"], "ES256", scope="read")} if kind == "pem" else {}
    return {
        **only_rsa,
        "es256 with the rsa kid": _sign(keys["ec"], "ES256", kid="r", scope="read"),
        "es384 p-384": _sign(keys["ec384"], "ES384", scope="read"),
        "eddsa against rsa": _sign(keys["ed"], "EdDSA", kid="r", scope="read"),
        "hs256 with the oct key": jwt.encode(_claims(scope="read"), HMAC_SECRET, "HS256", headers={"kid": "h"}),
        "alg none": f"{_segment({'alg': 'none'})}.{body}.",
        "alg a number": f"{_segment({'alg': 5})}.{body}.c2ln",
        "kid a list": _raw_rs256(keys["rsa"], {"alg": "RS256", "kid": ["r"]}, json.dumps(_claims()).encode()),
        "header not json": f"{_segment(b'{not json')}.{body}.c2ln",
        "header a list": f"{_segment([1, 2])}.{body}.c2ln",
        "header not base64": f"@@@.{body}.c2ln",
        "payload a list": _raw_rs256(keys["rsa"], {"alg": "RS256", "kid": "r"}, b"[1]"),
        "payload not json": _raw_rs256(keys["rsa"], {"alg": "RS256", "kid": "r"}, b"{x"),
        "scope a number": _sign(keys["rsa"], "RS256", kid="r", scope=5),
        "scope null": _sign(keys["rsa"], "RS256", kid="r", scope=None),
        "scope a list of numbers": _sign(keys["rsa"], "RS256", kid="r", scope=[1, 2]),
        "scope an object": _sign(keys["rsa"], "RS256", kid="r", scope={"read": True}),
        "scp a list of lists": _sign(keys["rsa"], "RS256", kid="r", scp=[["read"]]),
        "sub a number": _sign(keys["rsa"], "RS256", kid="r", scope="read", sub=5),
        "client_id an object": _sign(keys["rsa"], "RS256", kid="r", scope="read", client_id={"a": 1}),
        "exp a string": _sign(keys["rsa"], "RS256", kid="r", scope="read", exp="tomorrow"),
        "signature garbage": f"{_segment(good_header)}.{body}.%%%%",
        "three dots": "a.b.c",
        "empty parts": "..",
        "unicode": "é.é.é",
    }


def test_every_bad_jwt_is_401_never_500(pem_client: TestClient, jwks_client: TestClient, keys: dict[str, Any]) -> None:
    answers = {}
    for kind, client in (("pem", pem_client), ("jwks", jwks_client)):
        for name, token in _bad_tokens(keys, kind).items():
            raw_header = {"Authorization": f"Bearer {token}".encode()}  # bytes: a token may be any octets
            for headers, params in ((raw_header, None), ({}, {"access_token": token})):
                answers[f"{kind}: {name}"] = client.get("/flows", headers=headers, params=params).status_code
    assert {name: status for name, status in answers.items() if status != 401} == {}


def test_good_jwts_of_each_key_type_in_a_mixed_jwks_are_accepted(
    pem_client: TestClient, jwks_client: TestClient, keys: dict[str, Any]
) -> None:
    for client, key, algorithm, kid in (
        (pem_client, keys["rsa"], "RS256", None),
        (pem_client, keys["rsa"], "PS256", "anything"),
        (jwks_client, keys["rsa"], "RS256", "r"),
        (jwks_client, keys["rsa"], "RS256", None),
        (jwks_client, keys["ec"], "ES256", "e"),
        (jwks_client, keys["ec"], "ES256", None),
        (jwks_client, keys["ed"], "EdDSA", "o"),
    ):
        response = client.get("/flows", headers=bearer(_sign(key, algorithm, kid=kid, scope=["tams-api/read"])))
        assert response.status_code == 200, (algorithm, kid)


def test_an_unusable_key_file_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    with pytest.raises(ValueError, match="not a PEM public key"):
        JwtVerifier(JwtSettings(public_key=str(tmp_path / "key.pem")))
    with pytest.raises(ValueError, match="no usable signing key"):
        JwtVerifier(JwtSettings(jwks=str(tmp_path / "jwks.json")))


# --------------------------------------------------------------------------- weak secrets


@pytest.mark.parametrize(
    "secret",
    ["x", "secret", "password", "passwordpassword", "P@ssw0rd!P@ssw0rd!", "aaaaaaaaaaaaaaaaaaaa", "1234567890123456",
     "qwertyuiopasdfghjkl", "tams_test-admin-token", "changeme-changeme"],
)  # fmt: skip
def test_weak_secrets_are_weak(secret: str) -> None:
    assert weakness(secret) is not None


@pytest.mark.parametrize(
    "make",
    [lambda: secrets.token_urlsafe(32), new_token, lambda: "tams_" + secrets.token_urlsafe(24), lambda: ADMIN_TOKEN],
    ids=["token_urlsafe", "new_token", "readme-example", "tests-admin-token"],
)
def test_random_secrets_are_strong(make: Callable[[], str]) -> None:
    for _ in range(20):
        assert weakness(make()) is None


@pytest.mark.parametrize("setting", ["admin_token", "admin_password", "media_secret"])
def test_a_weak_secret_setting_is_refused_by_name_not_value(setting: str) -> None:
    with pytest.raises(WeakSecretError, match=f"{setting} \\(TAMS_{setting.upper()}\\)") as refused:
        check_settings(Settings(**{setting: "secret-secret-secret"}))
    assert "secret-secret-secret" not in str(refused.value)
    assert check_settings(Settings(**{setting: secrets.token_urlsafe(32)})) == []


def test_jwts_without_issuer_or_audience_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=secret_strength.__name__):
        warnings = check_settings(Settings(jwt_jwks="jwks.json", jwt_issuer="https://idp.example"))
    assert len(warnings) == 1 and "jwt_audience" in warnings[0] and "jwt_issuer" not in warnings[0]
    assert warnings[0] in caplog.text
    assert check_settings(Settings(jwt_jwks="jwks.json", jwt_issuer="i", jwt_audience="a")) == []


# --------------------------------------------------------------------------- through create_app


def test_create_app_refuses_a_weak_secret() -> None:
    with pytest.raises(WeakSecretError, match="media_secret"):
        create_app(app_settings(media_secret="secret"))


def test_create_app_passes_the_auth_settings_and_warns_about_open_jwts(
    tmp_path: Path, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["rsa"].public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    settings = app_settings(
        auth_failure_limit=3,
        auth_failure_window_s=5,
        password_check_concurrency=1,
        jwt_jwks=str(tmp_path / "jwks.json"),
    )
    with caplog.at_level(logging.WARNING):
        app = create_app(settings)
    assert "jwt_issuer or jwt_audience" in caplog.text
    assert (app.auth.clients.limit, app.auth.users.window_s, app.auth.password_concurrency) == (3, 5, 1)
