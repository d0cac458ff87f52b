"""DSSE envelopes (github.com/secure-systems-lab/dsse, v1.0) around in-toto statements: what the OMS bundle
of a version (oms.py) and the signed LATEST statement (freshness.py) carry.

The signature covers the pre-authentication encoding (PAE) of payload type and payload, never parsed
JSON: a verifier checks the bytes first and parses them only once they verify.
"""

from __future__ import annotations

import base64
import binascii
import json

from .keys import Signer, Verifier

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_statement(signer: Signer, statement: dict, *, keyid: str = "") -> dict:
    """The DSSE envelope of an in-toto statement (compact JSON, sorted keys)."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    signature = signer.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }


class Refused(Exception):
    """Why an envelope or what it carries is not accepted: a phrase that fits "... has <problem>"."""


def open_statement(verifier: Verifier, envelope, what: str) -> dict:
    """The in-toto statement of envelope once a signature by verifier covers it (else Refused)."""
    if not isinstance(envelope, dict) or envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise Refused(f"{what} that is not a DSSE envelope of an in-toto statement")
    signatures = envelope.get("signatures")
    try:
        payload = base64.b64decode(envelope.get("payload", ""), validate=True)
        sigs = [base64.b64decode(s.get("sig", ""), validate=True) for s in signatures or []]
    except (TypeError, AttributeError, ValueError, binascii.Error):
        raise Refused(f"{what} whose payload or signature is not base64") from None
    if not sigs:
        raise Refused(f"{what} without a signature")
    message = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    if not any(verifier.valid(message, sig) for sig in sigs):
        raise Refused(f"{what} whose signature does not verify with the trust key {verifier.ref}")
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        statement = None
    if not isinstance(statement, dict) or statement.get("_type") != IN_TOTO_STATEMENT:
        raise Refused(f"{what} whose payload is not an in-toto statement v1")
    return statement
