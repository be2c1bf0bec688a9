"""Drives a running idplane as an independent relying party would, with
Authlib (a mainstream Python OAuth 2.0 / OpenID Connect client) for the
protocol and `requests` as the person's browser. Exits non-zero on the
first check that fails.

    python3 interop/oidc/check.py http://127.0.0.1:18490 ADMIN_TOKEN

Covers: discovery; the code flow with PKCE S256, nonce, state and the
RFC 9207 `iss` check; the ID token verified against the JWKS (signature,
iss, aud, nonce, at_hash); userinfo; refresh with rotation and reuse
detection; introspection and revocation; a replayed code; RP-initiated
logout revoking the session's refresh tokens; client credentials (an
RFC 9068 access token, verified); the device flow (RFC 8628).
(`interop/oidc/run.sh` starts a fresh server and runs this.)
"""

import html
import re
import secrets
import sys
import time
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken

REDIRECT = "http://127.0.0.1:9/cb"
AFTER_LOGOUT = "http://127.0.0.1:9/bye"
USERNAME = "rp-alice"
PASSWORD = "correct horse battery staple 42"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

base, admin_token = sys.argv[1].rstrip("/"), sys.argv[2]
checks = 0


def ok(condition, what):
    global checks
    if not condition:
        print(f"not ok - {what}")
        sys.exit(1)
    checks += 1
    print(f"ok - {what}")


def admin(method, path, **kwargs):
    r = requests.request(
        method, base + path, headers={"Authorization": f"Bearer {admin_token}"}, **kwargs
    )
    if r.status_code >= 300:
        sys.exit(f"admin {method} {path}: {r.status_code} {r.text}")
    return r.json() if r.content else None


def form_value(page, name):
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    if not match:
        sys.exit(f"no {name} field on the page:\n{page[:2000]}")
    return html.unescape(match.group(1))


class Browser:
    """A person's browser: cookies, and forms posted as a page would."""

    def __init__(self):
        self.http = requests.Session()
        self.consents = 0

    def get(self, url):
        return self.http.get(urljoin(base, url), allow_redirects=False)

    def post(self, url, fields):
        return self.http.post(urljoin(base, url), data=fields, allow_redirects=False)

    def sign_in(self, login="/login"):
        page = self.get(login).text
        r = self.post(
            "/login",
            {"csrf": form_value(page, "csrf"), "username": USERNAME, "password": PASSWORD},
        )
        ok(r.status_code == 303, "the person signs in on /login")
        return r.headers["Location"]

    def to_client(self, r):
        """Follows the provider's pages (sign-in, consent) until it sends
        the browser to the client; returns that URL."""
        for _ in range(6):
            if r.status_code in (302, 303):
                location = r.headers["Location"]
                if location.startswith(REDIRECT) or location.startswith(AFTER_LOGOUT):
                    return location
                if urlparse(location).path == "/login":
                    location = self.sign_in(location)
                r = self.get(location)
            elif 'name="handle"' in r.text:
                ok("Python RP" in r.text, "the consent page names the client")
                self.consents += 1
                r = self.post(
                    "/oauth2/authorize/consent",
                    {
                        "csrf": form_value(r.text, "csrf"),
                        "handle": form_value(r.text, "handle"),
                        "decision": "allow",
                    },
                )
            elif 'id="continue"' in r.text:
                return html.unescape(re.search(r'id="continue" href="([^"]*)"', r.text).group(1))
            else:
                sys.exit(f"unexpected page {r.status_code}:\n{r.text[:2000]}")
        sys.exit("the browser never got back to the client")


def error_of(r):
    return r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None


# Discovery and keys.
meta = requests.get(base + "/.well-known/openid-configuration").json()
issuer = meta["issuer"]
ok(issuer == base, "discovery names the issuer it is served from")
ok("S256" in meta["code_challenge_methods_supported"], "discovery advertises PKCE S256")
jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"]).json())
ok(len(jwks.keys) >= 1, "the JWKS holds a signing key")
algs = meta["id_token_signing_alg_values_supported"]

# The administrator's set-up: a person with a password and a confidential client.
user = admin("POST", "/api/v1/users", json={"username": USERNAME, "email": "rp-alice@example.com"})
admin("POST", f"/api/v1/users/{user['id']}/password", json={"password": PASSWORD, "temporary": False})
client = admin(
    "POST",
    "/api/v1/clients",
    json={
        "client_id": "python-rp",
        "name": "Python RP",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": [AFTER_LOGOUT],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials", DEVICE_GRANT],
        "scopes": ["openid", "profile", "email", "offline_access"],
    },
)
client_id, client_secret = client["client_id"], client["client_secret"]


def rp(**kwargs):
    return OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
        **kwargs,
    )


def token_request(data, secret=None):
    """A token request made by hand, for the refusals Authlib would raise."""
    return requests.post(meta["token_endpoint"], auth=(client_id, secret or client_secret), data=data)


def refresh_error(refresh_token):
    return error_of(token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}))


def introspect(token):
    return requests.post(meta["introspection_endpoint"], data={"token": token},
                         auth=(client_id, client_secret)).json()


def verify_jwt(token, claims_cls=None, **params):
    """Signature against the JWKS, and the claims (always our issuer)."""
    claims = JsonWebToken(algs).decode(
        token, jwks, claims_cls=claims_cls,
        claims_options={"iss": {"essential": True, "value": issuer}}, **params
    )
    claims.validate(leeway=5)
    return claims


# The code flow with PKCE.
browser = Browser()
session = rp(scope="openid profile email offline_access", redirect_uri=REDIRECT,
             code_challenge_method="S256")
verifier = secrets.token_urlsafe(48)
nonce = secrets.token_urlsafe(16)
url, state = session.create_authorization_url(
    meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
)
callback = browser.to_client(browser.get(url))
params = {k: v[0] for k, v in parse_qs(urlparse(callback).query).items()}
ok(params.get("state") == state and "code" in params, "the code comes back with its state")
ok(params.get("iss") == issuer, "the authorization response names the issuer (RFC 9207)")
token = session.fetch_token(
    meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
)
ok(token.get("token_type", "").lower() == "bearer" and "refresh_token" in token,
   "the code is exchanged for access, ID and refresh tokens")
id_claims = verify_jwt(
    token["id_token"],
    claims_cls=CodeIDToken,
    claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
)
ok(id_claims["preferred_username"] == USERNAME and "at_hash" in id_claims,
   "the ID token verifies against the JWKS (iss, aud, nonce, at_hash)")
access = verify_jwt(token["access_token"])
ok(access.header.get("typ") == "at+jwt" and access["sub"] == id_claims["sub"],
   "the access token is an RFC 9068 JWT for the same subject")

replay = token_request({"grant_type": "authorization_code", "code": params["code"],
                        "redirect_uri": REDIRECT, "code_verifier": verifier})
ok(replay.status_code == 400 and error_of(replay) == "invalid_grant", "a replayed code is refused")
ok(introspect(token["access_token"]) == {"active": False}
   and refresh_error(token["refresh_token"]) == "invalid_grant",
   "the replay revoked the access and refresh tokens of the code's first use")
# Start again with a fresh code.
url, state = session.create_authorization_url(
    meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
)
callback = browser.to_client(browser.get(url))
ok("code=" in callback and browser.consents == 1,
   "a second authorization reuses the session and the consent")
token = session.fetch_token(
    meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
)

info = session.get(meta["userinfo_endpoint"]).json()
ok(info["sub"] == id_claims["sub"] and info["email"] == "rp-alice@example.com",
   "userinfo answers for the token's subject")

first_refresh = token["refresh_token"]
refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
ok(refreshed["refresh_token"] != first_refresh, "a refresh rotates the refresh token")
active = introspect(refreshed["access_token"])
ok(active.get("active") is True and active.get("sub") == id_claims["sub"],
   "introspection reports the new access token active")
session.revoke_token(meta["revocation_endpoint"], refreshed["access_token"],
                     token_type_hint="access_token")
ok(introspect(refreshed["access_token"]) == {"active": False},
   "a revoked access token introspects inactive")

ok(refresh_error(first_refresh) == "invalid_grant", "a spent refresh token is refused")
ok(refresh_error(refreshed["refresh_token"]) == "invalid_grant", "reuse revoked the whole family")

# RP-initiated logout ends the session and the refresh tokens issued under it.
url, state = session.create_authorization_url(
    meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
)
token = session.fetch_token(meta["token_endpoint"],
                            authorization_response=browser.to_client(browser.get(url)),
                            code_verifier=verifier)
logout = browser.get(
    meta["end_session_endpoint"]
    + "?"
    + requests.compat.urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT, "state": "bye"}
    )
)
back = browser.to_client(logout)
ok(back.startswith(AFTER_LOGOUT) and "state=bye" in back, "logout returns to the client with its state")
ok(refresh_error(token["refresh_token"]) == "invalid_grant", "logout revoked the session's refresh token")
ok(browser.get("/account").status_code in (302, 303), "the browser is signed out")

# Client credentials: a service's own token.
service = rp(scope="")
cc = service.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
cc_claims = verify_jwt(cc["access_token"])
ok(cc_claims.header.get("typ") == "at+jwt" and cc_claims["sub"] == client_id
   and "refresh_token" not in cc, "client credentials give the client its own JWT, no refresh token")
wrong = token_request({"grant_type": "client_credentials"}, secret="idp_cs_" + "x" * 43)
ok(wrong.status_code == 401 and error_of(wrong) == "invalid_client", "a wrong secret is invalid_client")

# The device flow, as a CLI would run it.
device = requests.post(meta["device_authorization_endpoint"], auth=(client_id, client_secret),
                       data={"scope": "openid profile"}).json()
poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"]}
pending = token_request(poll)
ok(error_of(pending) == "authorization_pending", "the device polls: authorization pending")
browser.sign_in()
page = browser.get("/device").text
confirm = browser.post("/device", {"csrf": form_value(page, "csrf"), "user_code": device["user_code"]})
ok("Python RP" in confirm.text, "the device page names the client before approval")
done = browser.post("/device/decision", {"csrf": form_value(confirm.text, "csrf"),
                                         "user_code": device["user_code"], "decision": "approve"})
ok(done.status_code < 400, "the person approves the device")
time.sleep(device.get("interval", 5))
granted = token_request(poll).json()
device_claims = verify_jwt(granted["id_token"])
ok(device_claims["sub"] == id_claims["sub"], "the device gets tokens for the person who approved")
again = token_request(poll)
ok(error_of(again) in ("invalid_grant", "expired_token"), "a device code is single use")

print(f"# {checks} checks passed")
