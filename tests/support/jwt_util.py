"""Test tokens: an RSA key pair, its JWKS, signed JWTs, and the Envoy
`jwt_authn` filter that verifies them against that local JWKS."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://issuer.mcp-policy.test"
AUDIENCE = "mcp-demo"


def make_keys() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"key": key, "jwks": json.dumps({"keys": [jwk]}), "other": other}


def token(keys: dict[str, Any], *, key: Any = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, key or keys["key"], algorithm="RS256", headers={"kid": "k1"})


def jwt_filter(jwks: str) -> dict[str, Any]:
    """jwt_authn with the payload in dynamic metadata (`jwt_payload`). A
    missing token passes (the policy then sees no identity); a bad one is
    refused by jwt_authn itself (401)."""
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "test": {
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "local_jwks": {"inline_string": jwks},
                    "payload_in_metadata": "jwt_payload",
                }
            },
            "rules": [{"match": {"prefix": "/"},
                       "requires": {"requires_any": {"requirements": [{"provider_name": "test"},
                                                                      {"allow_missing": {}}]}}}],
        },
    }
