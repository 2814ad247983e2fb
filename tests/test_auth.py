"""Authentication and authorisation: each scheme, each scope, JWTs, the credential store."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import jwt
import pytest
from conftest import ADMIN_TOKEN, app_settings, flow_body
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.auth import CredentialStore
from tools import admin


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = CredentialStore(tmp_path / "credentials.json")
    store.add_password("editor", "correct horse", ["read", "write"])
    store.add_password("viewer", "battery staple", ["tams-api/read"])
    return tmp_path


@pytest.fixture
def client(data_dir: Path) -> TestClient:
    return TestClient(create_app(app_settings(data_dir=str(data_dir))))


def test_no_credentials_is_401_with_a_challenge(client: TestClient) -> None:
    response = client.get("/flows")
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]
    assert "Basic" in response.headers["www-authenticate"]
    assert set(response.json()) == {"type", "summary", "time"}


@pytest.mark.parametrize(
    "headers",
    [
        basic("editor", "wrong"),
        basic("nobody", "correct horse"),
        bearer("tams_not-a-token"),
        {"Authorization": "Basic !!"},
    ],
)
def test_wrong_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/flows", headers=headers)
    assert response.status_code == 401
    assert "www-authenticate" in response.headers


def test_each_scheme_authenticates(client: TestClient) -> None:
    assert client.get("/flows", headers=basic("viewer", "battery staple")).status_code == 200
    assert client.get("/flows", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.get("/flows", params={"access_token": ADMIN_TOKEN}).status_code == 200


def test_scopes_decide_what_a_caller_may_do(client: TestClient) -> None:
    flow = flow_body()
    viewer, editor = basic("viewer", "battery staple"), basic("editor", "correct horse")
    assert client.put(f"/flows/{flow['id']}", json=flow, headers=viewer).status_code == 403
    assert client.put(f"/flows/{flow['id']}", json=flow, headers=editor).status_code == 201
    assert client.get(f"/flows/{flow['id']}", headers=viewer).status_code == 200
    assert client.head(f"/flows/{flow['id']}", headers=viewer).status_code == 200
    assert client.delete(f"/flows/{flow['id']}", headers=editor).status_code == 403
    assert client.post("/service", json={"name": "x"}, headers=editor).status_code == 403
    assert client.get("/service/webhooks", headers=editor).status_code == 403
    assert client.delete(f"/flows/{flow['id']}", headers=bearer(ADMIN_TOKEN)).status_code == 204


def test_changes_are_signed_by_the_principal(client: TestClient) -> None:
    flow = flow_body(created_by="someone else")
    editor = basic("editor", "correct horse")
    created = client.put(f"/flows/{flow['id']}", json=flow, headers=editor).json()
    assert (created["created_by"], created["updated_by"]) == ("editor", "editor")
    assert client.put(f"/flows/{flow['id']}/label", json="x", headers=bearer(ADMIN_TOKEN)).status_code == 204
    updated = client.get(f"/flows/{flow['id']}", headers=editor).json()
    assert (updated["created_by"], updated["updated_by"]) == ("editor", "admin-token")
    assert client.get(f"/sources/{flow['source_id']}", headers=editor).json()["created_by"] == "editor"


def test_the_access_token_is_not_repeated_in_paging_links(client: TestClient) -> None:
    for _ in range(2):
        flow = flow_body()
        client.put(f"/flows/{flow['id']}", json=flow, headers=bearer(ADMIN_TOKEN))
    response = client.get("/flows", params={"access_token": ADMIN_TOKEN, "limit": 1})
    assert response.status_code == 200
    assert ADMIN_TOKEN not in response.headers["link"]


def test_signed_media_urls_need_no_credentials(client: TestClient) -> None:
    flow = flow_body()
    admin_headers = bearer(ADMIN_TOKEN)
    client.put(f"/flows/{flow['id']}", json=flow, headers=admin_headers)
    [media] = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}, headers=admin_headers).json()[
        "media_objects"
    ]
    assert client.put(media["put_url"]["url"], content=b"bytes").status_code == 200
    segment = {"object_id": media["object_id"], "timerange": "[0:0_1:0)"}
    assert client.post(f"/flows/{flow['id']}/segments", json=segment, headers=admin_headers).status_code == 201
    url = client.get(f"/flows/{flow['id']}/segments", headers=admin_headers).json()[0]["get_urls"][0]["url"]
    assert client.get(url).content == b"bytes"
    assert client.get(url.replace("signature=", "signature=0")).status_code == 403


def test_the_store_keeps_only_hashes(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    token = store.add_token("robot", ["read"])
    store.add_password("person", "a long secret", ["read"])
    text = (tmp_path / "credentials.json").read_text()
    assert token not in text
    assert "a long secret" not in text
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
    reread = CredentialStore(tmp_path / "credentials.json")
    assert reread.check_token(token).name == "robot"
    assert reread.check_password("person", "a long secret").name == "person"
    assert reread.check_password("person", "a long secreT") is None


def test_first_start_creates_an_admin_token_and_shows_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_app(app_settings(data_dir=str(tmp_path), admin_token=None))
    shown = capsys.readouterr().err
    token = next(word for word in shown.split() if word.startswith("tams_"))
    client = TestClient(create_app(app_settings(data_dir=str(tmp_path), admin_token=None)))
    assert "tams_" not in capsys.readouterr().err  # the second start shows nothing
    assert client.get("/service/webhooks", headers=bearer(token)).status_code == 200
    assert token not in (tmp_path / "credentials.json").read_text()


def test_admin_credentials_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAMS_ADMIN_USER", "root")
    monkeypatch.setenv("TAMS_ADMIN_PASSWORD", "from the environment")
    from tams_server import config

    settings = config.load(overrides={"data_dir": str(tmp_path), "spec": None})
    client = TestClient(create_app(settings))
    assert client.get("/service/webhooks", headers=basic("root", "from the environment")).status_code == 200
    assert client.get("/service/webhooks", headers=basic("root", "wrong")).status_code == 401


def test_auth_can_be_turned_off_only_explicitly(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(create_app(app_settings(insecure_no_auth=True)))
    assert client.get("/flows").status_code == 200
    assert "AUTHENTICATION IS OFF" in caplog.text


def test_admin_tool_creates_lists_and_removes_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin.main(["--data-dir", str(tmp_path), "add-token", "robot", "--scopes", "read,write"]) == 0
    token = capsys.readouterr().out.split()[-1]
    assert admin.main(["--data-dir", str(tmp_path), "list"]) == 0
    listing = capsys.readouterr().out
    assert "robot" in listing and token not in listing
    client = TestClient(create_app(app_settings(data_dir=str(tmp_path))))
    assert client.get("/flows", headers=bearer(token)).status_code == 200
    assert admin.main(["--data-dir", str(tmp_path), "remove", "robot"]) == 0
    client = TestClient(create_app(app_settings(data_dir=str(tmp_path))))
    assert client.get("/flows", headers=bearer(token)).status_code == 401
    assert admin.main(["--data-dir", str(tmp_path), "add-token", "x", "--scopes", "fly"]) == 2


@pytest.mark.parametrize(("password", "status"), [("password1", 2), ("Tr0ub4dor&3", 2), ("x7#Lq9vR!m2Zp4Kw", 0)])
def test_admin_refuses_weak_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str, status: int
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    command = ["--data-dir", str(tmp_path), "add-user", "editor", "--scopes", "read", "--password-stdin"]
    assert admin.main(command) == status


# --- JWT ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_jwt(key: rsa.RSAPrivateKey, kid: str | None = None, **claims: object) -> str:
    now = int(time.time())
    payload = {"sub": "svc", "iss": "https://idp.example", "aud": "tams", "exp": now + 300, "iat": now, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid} if kid else None)


@pytest.fixture(params=["pem", "jwks"])
def jwt_client(request: pytest.FixtureRequest, tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> TestClient:
    public = signing_key.public_key()
    if request.param == "pem":
        path = tmp_path / "key.pem"
        path.write_bytes(
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        options = {"jwt_public_key": str(path)}
    else:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
        options = {"jwt_jwks": str(path)}
    settings = app_settings(jwt_issuer="https://idp.example", jwt_audience="tams", **options)
    return TestClient(create_app(settings))


def test_a_valid_jwt_grants_its_scopes(jwt_client: TestClient, signing_key: rsa.RSAPrivateKey) -> None:
    token = make_jwt(signing_key, kid="k1", scope="tams-api/read tams-api/write")
    flow = flow_body()
    assert jwt_client.put(f"/flows/{flow['id']}", json=flow, headers=bearer(token)).status_code == 201
    assert jwt_client.get(f"/flows/{flow['id']}", headers=bearer(token)).json()["created_by"] == "svc"
    assert jwt_client.delete(f"/flows/{flow['id']}", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize(
    "claims",
    [{"exp": int(time.time()) - 3600}, {"iss": "https://evil.example"}, {"aud": "other"}],
    ids=["expired", "issuer", "audience"],
)
def test_a_jwt_with_bad_claims_is_401(
    jwt_client: TestClient, signing_key: rsa.RSAPrivateKey, claims: dict[str, object]
) -> None:
    token = make_jwt(signing_key, kid="k1", scope="read", **claims)
    assert jwt_client.get("/flows", headers=bearer(token)).status_code == 401


def test_a_jwt_signed_by_another_key_is_401(jwt_client: TestClient) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert jwt_client.get("/flows", headers=bearer(make_jwt(stranger, kid="k1", scope="read"))).status_code == 401
