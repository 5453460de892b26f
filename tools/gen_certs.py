#!/usr/bin/env python3
"""Generate the throwaway PKI and JWT key that the mesh configurations in envoy/ use.

    python tools/gen_certs.py                      # fills build/mesh/certs/ (the default)
    python tools/gen_certs.py --out DIR [--force]
    python tools/gen_certs.py token --sub alice --claim roles='["admin"]'   # a signed test JWT

Nothing here is fit for production: the keys are made on the spot, live in a
directory that git ignores, and every run makes new ones. The repository
ships no private key. The shipped ``envoy/*.yaml`` files reference these
paths relative to the repository root (``build/mesh/certs/...``); replace
them with your own certificates (for example the SPIFFE SVIDs your mesh
issues) in a real deployment.

What it writes (PEM, ECDSA P-256; keys are mode 0600):

============================  ==============================================================
``ca.pem``                    the mesh root CA (its key is not kept: rerun to reissue)
``server.pem`` / ``-key``     the MCP server side: DNS ``localhost``, ``mcp-server.example.org``,
                              IP ``127.0.0.1``, URI ``spiffe://example.org/ns/mcp/sa/mcp-server``
``finance-agent.pem`` / key   client cert, URI ``spiffe://example.org/ns/agents/sa/finance-agent``
``health-agent.pem`` / key    client cert, URI ``spiffe://example.org/ns/agents/sa/health-agent``
``untrusted-agent.pem`` / key client cert with a finance-agent URI SAN, issued by another CA
``jwt-signing-key.pem``       ES256 key that signs test JWTs (``token`` subcommand, tests)
``jwks.json``                 the matching public JWKS (``kid`` ``mcp-test-1``), for jwt_authn
============================  ==============================================================

Library use (the tests import it)::

    from gen_certs import generate, mint_jwt
    paths = generate(tmp_path / "certs")
    token = mint_jwt(paths["jwt-signing-key"], {"sub": "alice", "roles": ["admin"]})

Needs the ``cryptography`` package (in the project's venv).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import ipaddress
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_OUT = Path("build/mesh/certs")
TRUST_DOMAIN = "example.org"
SERVER_SPIFFE_ID = f"spiffe://{TRUST_DOMAIN}/ns/mcp/sa/mcp-server"
AGENT_SPIFFE_IDS = {
    "finance-agent": f"spiffe://{TRUST_DOMAIN}/ns/agents/sa/finance-agent",
    "health-agent": f"spiffe://{TRUST_DOMAIN}/ns/agents/sa/health-agent",
}
JWT_ISSUER = "https://idp.example.org"
JWT_AUDIENCE = "mcp-server"
JWT_KID = "mcp-test-1"

__all__ = [
    "AGENT_SPIFFE_IDS",
    "DEFAULT_OUT",
    "JWT_AUDIENCE",
    "JWT_ISSUER",
    "JWT_KID",
    "SERVER_SPIFFE_ID",
    "generate",
    "mint_jwt",
]


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mcp-policy test mesh"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(common_name: str, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    sans: list[x509.GeneralName],
    *,
    server: bool,
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        # An X.509-SVID carries its SPIFFE ID as the (only) URI SAN.
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
        "kid": JWT_KID,
        "alg": "ES256",
        "use": "sig",
    }


def generate(out: str | os.PathLike[str] = DEFAULT_OUT, *, days: int = 30, force: bool = True) -> dict[str, Path]:
    """Write the whole set into ``out``; return {name: path} (names as in the module docstring, no suffix).

    With ``force=False`` an existing, complete set is left as it is.
    """
    out = Path(out)
    names = ["ca", "server", "server-key", "untrusted-agent", "untrusted-agent-key", "jwt-signing-key", "jwks"]
    for agent in AGENT_SPIFFE_IDS:
        names += [agent, f"{agent}-key"]
    paths = {n: out / (f"{n}.json" if n == "jwks" else f"{n}.pem") for n in names}
    if not force and all(p.is_file() for p in paths.values()):
        return paths
    out.mkdir(parents=True, exist_ok=True)

    ca_cert, ca_key = _ca("mcp-policy test mesh root CA", days)
    _write_cert(paths["ca"], ca_cert)

    cert, key = _leaf(ca_cert, ca_key, "mcp-server", [
        x509.DNSName("localhost"),
        x509.DNSName("mcp-server.example.org"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.UniformResourceIdentifier(SERVER_SPIFFE_ID),
    ], server=True, days=days)
    _write_cert(paths["server"], cert)
    _write_key(paths["server-key"], key)

    for agent, spiffe_id in AGENT_SPIFFE_IDS.items():
        cert, key = _leaf(ca_cert, ca_key, agent, [x509.UniformResourceIdentifier(spiffe_id)], server=False,
                          days=days)
        _write_cert(paths[agent], cert)
        _write_key(paths[f"{agent}-key"], key)

    # Same SPIFFE ID as the finance agent, but from a CA the server does not trust.
    rogue_ca, rogue_key = _ca("some other CA", days)
    cert, key = _leaf(rogue_ca, rogue_key, "finance-agent",
                      [x509.UniformResourceIdentifier(AGENT_SPIFFE_IDS["finance-agent"])], server=False, days=days)
    _write_cert(paths["untrusted-agent"], cert)
    _write_key(paths["untrusted-agent-key"], key)

    jwt_key = _key()
    _write_key(paths["jwt-signing-key"], jwt_key)
    paths["jwks"].write_text(json.dumps({"keys": [_jwk(jwt_key)]}, indent=2) + "\n", encoding="utf-8")
    return paths


def mint_jwt(
    signing_key: str | os.PathLike[str],
    claims: dict[str, Any],
    *,
    lifetime: int = 600,
    kid: str = JWT_KID,
    defaults: bool = True,
) -> str:
    """An ES256 JWT signed with the PEM key at ``signing_key``.

    With ``defaults`` the claims get ``iss``, ``aud``, ``iat`` and ``exp``
    (``lifetime`` seconds from now) unless given; pass ``exp`` in the past to
    make an expired token.
    """
    key = serialization.load_pem_private_key(Path(signing_key).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the JWT signing key must be an EC P-256 key")
    body = dict(claims)
    if defaults:
        now = int(time.time())
        body.setdefault("iss", JWT_ISSUER)
        body.setdefault("aud", JWT_AUDIENCE)
        body.setdefault("iat", now)
        body.setdefault("exp", now + lifetime)
    header = {"alg": "ES256", "typ": "JWT", "kid": kid}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(body, separators=(",", ":")).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--days", type=int, default=30, help="certificate lifetime in days (default 30)")
    parser.add_argument("--if-missing", action="store_true",
                        help="keep an existing complete set instead of making a new one")
    tok = sub.add_parser("token", help="print a test JWT signed with <out>/jwt-signing-key.pem")
    tok.add_argument("--sub", default="alice")
    tok.add_argument("--claim", action="append", default=[], metavar="NAME=JSON",
                     help="extra claim; the value is parsed as JSON, else taken as a string (repeatable)")
    tok.add_argument("--lifetime", type=int, default=3600)
    args = parser.parse_args(argv)

    out = Path(args.out)
    if args.command == "token":
        claims: dict[str, Any] = {"sub": args.sub}
        for item in args.claim:
            name, _, value = item.partition("=")
            try:
                claims[name] = json.loads(value)
            except json.JSONDecodeError:
                claims[name] = value
        key = out / "jwt-signing-key.pem"
        if not key.is_file():
            parser.error(f"{key} not found: run `python tools/gen_certs.py --out {out}` first")
        print(mint_jwt(key, claims, lifetime=args.lifetime))
        return 0

    paths = generate(out, days=args.days, force=not args.if_missing)
    print(f"mesh certificates and JWT key in {out}/ ({len(paths)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
