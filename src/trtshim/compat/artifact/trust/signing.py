"""Optional authenticity: a detached Ed25519 signature over an artifact's member table.

The member table (``trtshim_members.json``, see ``integrity``) holds the digest (BLAKE3 or SHA-256) of every other member,
the manifest included, so a signature over the table's bytes covers the whole artifact. ``sign`` writes
it beside the file (``model.pt2.sig``, base64); ``load(..., public_key=...)`` checks it before anything
else is read, then the member digests as always. Keys are the caller's: ``cryptography`` key objects,
PEM bytes, or paths to PEM files (``trtshim keygen`` writes a pair). Needs ``cryptography``
(``pip install 'trtshim[signing]'``); torch-free.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import zipfile
from typing import Any

from trtshim.compat.artifact.trust import integrity
from trtshim.errors import SignatureError, TrtShimError

SUFFIX = ".sig"
_HEADER = "trtshim-ed25519 "


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise TrtShimError(
            "signing needs the cryptography package, which is not installed",
            "pip install 'trtshim[signing]' (or pip install cryptography)",
        ) from exc
    return serialization, ed25519


def _key(key: Any, private: bool) -> Any:
    serialization, ed25519 = _crypto()
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if isinstance(key, wanted):
        return key
    if private is False and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key()
    what = "private" if private else "public"
    if isinstance(key, (str, os.PathLike)):
        try:
            with open(key, "rb") as fh:
                key = fh.read()
        except OSError as exc:
            raise SignatureError(f"cannot read the {what} key {os.fspath(key)}: {exc.strerror}") from exc
    if not isinstance(key, bytes):
        raise SignatureError(
            f"a {what} key must be an Ed25519 key, PEM bytes or a PEM file's path, got {type(key).__name__}",
            "`trtshim keygen NAME` writes NAME.key and NAME.pub",
        )
    try:
        loaded = (
            serialization.load_pem_private_key(key, password=None)
            if private
            else serialization.load_pem_public_key(key)
        )
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"the {what} key is not a PEM {what} key: {exc}") from exc
    if not isinstance(loaded, wanted):
        raise SignatureError(f"the {what} key is a {type(loaded).__name__}; trtshim signs with Ed25519 keys")
    return loaded


def _table_bytes(path: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        found = integrity.read_table(path, zf)
    if found is None:
        raise SignatureError(
            f"{path} has no member table to sign or check (saved by an older trtshim, or not by trtshim)",
            "re-save it with this trtshim, then sign it",
        )
    return found[1]


def sign(path: str | os.PathLike[str], private_key: Any, signature: str | os.PathLike[str] | None = None) -> str:
    """Sign the artifact at ``path``; writes ``path + '.sig'`` (or ``signature``) atomically and returns it."""
    path = os.fspath(path)
    key = _key(private_key, private=True)
    data = _table_bytes(path)
    text = _HEADER + base64.b64encode(key.sign(data)).decode("ascii") + "\n"
    out = os.fspath(signature) if signature is not None else path + SUFFIX
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=os.path.dirname(os.path.abspath(out)))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def verify(
    path: str | os.PathLike[str],
    public_key: Any,
    signature: str | os.PathLike[str] | None = None,
    table_bytes: bytes | None = None,
) -> None:
    """``SignatureError`` unless ``signature`` (default ``path + '.sig'``) is ``public_key``'s over the table."""
    path = os.fspath(path)
    key = _key(public_key, private=False)
    sig_path = os.fspath(signature) if signature is not None else path + SUFFIX
    try:
        with open(sig_path, encoding="ascii") as fh:
            text = fh.read(4096)
    except (OSError, UnicodeDecodeError) as exc:
        raise SignatureError(
            f"no readable signature for {path} at {sig_path}",
            "pass load(..., signature=PATH), or sign it: `trtshim sign FILE --key KEY`",
        ) from exc
    try:
        if not text.startswith(_HEADER):
            raise ValueError("not a trtshim signature")
        raw = base64.b64decode(text[len(_HEADER) :].strip(), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SignatureError(f"the signature file {sig_path} is malformed: {exc}") from exc
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(raw, table_bytes if table_bytes is not None else _table_bytes(path))
    except InvalidSignature as exc:
        raise SignatureError(
            f"the signature {sig_path} does not match {path} under the given public key",
            "the artifact, its member table or the signature changed, or it was signed with another key",
        ) from exc


def keygen(stem: str | os.PathLike[str]) -> tuple[str, str]:
    """Write a new Ed25519 pair: ``stem.key`` (private, mode 600) and ``stem.pub``; their paths."""
    serialization, ed25519 = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    stem = os.fspath(stem)
    private, public = stem + ".key", stem + ".pub"
    for p in (private, public):
        if os.path.exists(p):
            raise TrtShimError(f"{p} exists already", "choose another name; keys are never overwritten")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    with open(public, "wb") as fh:
        fh.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public
