"""WeChat callback crypto: URL-check signature and the AES message scheme ("WXBizMsgCrypt").

The AES scheme is shared by WeChat OA / mini-program, WeCom and DingTalk event callbacks, so
`BizMsgCrypto` lives here and the other platforms subclass it:

- key = base64decode(EncodingAESKey + "="), AES-256-CBC, iv = key[:16], PKCS#7 with block 32;
- frame = 16 random bytes + 4-byte big-endian msg length in UTF-8 BYTES + msg + receive_id;
- msg_signature = sha1("".join(sorted([token, timestamp, nonce, encrypt]))).

Written on `cryptography` rather than wrapping wechatpy's PrpCrypto: that one compares
signatures with `!=`, does not check the padding, keeps one key, and lets struct/base64/
Unicode errors escape. Its output is byte-for-byte the same (tested for interop).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import string
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.errors import InvalidPayload, InvalidSignature, ReceiveIdMismatch, StaleTimestamp
from channels.wechat.parser import is_json, parse_json, parse_xml

BLOCK = 32  # the PKCS#7 block of this scheme: 32, not AES's 16
TIMESTAMP_WINDOW_S = 300  # a callback's timestamp must be this close to now (DESIGN §5)
_ALNUM = string.ascii_letters + string.digits

Format = Literal["xml", "json"]


def sha1_signature(*parts: str) -> str:
    """sha1 hex of the parts sorted and concatenated — every WeChat-family signature."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signatures_equal(expected: str, given: str) -> bool:
    # Bytes, because compare_digest raises TypeError on non-ASCII str (a hostile query).
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def check_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """The plain `signature` of URL checks and plaintext pushes: sha1(sorted(token, ts, nonce))."""
    return signatures_equal(sha1_signature(token, timestamp, nonce), signature)


def check_timestamp(timestamp: str, *, now_s: float, window_s: int = TIMESTAMP_WINDOW_S) -> int:
    """The query `timestamp` (unix seconds) of a callback, if within `window_s` of now.

    The signatures cover the timestamp but nothing says when they were made: this bounds how
    long a captured request stays usable (the webhooks remember its nonce that long).
    """
    ts = timestamp.strip()
    if not (ts.isascii() and ts.isdigit()) or len(ts) > 12:
        raise StaleTimestamp("timestamp must be unix seconds")
    if abs(now_s - int(ts)) > window_s:
        raise StaleTimestamp(f"timestamp more than {window_s} s from now")
    return int(ts)


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-char EncodingAESKey; ValueError on a bad config value."""
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("EncodingAESKey is not base64") from None
    return key


def alnum_prefix() -> bytes:
    # Alphanumeric like the platforms' own SDKs, in case a peer decodes the frame as text.
    return "".join(secrets.choice(_ALNUM) for _ in range(16)).encode()


def random_nonce() -> str:
    return str(secrets.randbelow(9 * 10**9) + 10**9)


@dataclass(frozen=True, slots=True)
class Decrypted:
    """A decrypted message and how to answer it."""

    text: str
    key_index: int  # 0 = current EncodingAESKey, 1 = previous: reply with the same one
    fmt: Format = "xml"  # the envelope's format, which the reply must use
    to_user_name: str | None = None  # the envelope's ToUserName, when it has one


@dataclass(frozen=True, slots=True)
class Sealed:
    """An encrypted reply and its signature, before it is put in an envelope."""

    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str


class BizMsgCrypto:
    """The AES message scheme with one receive_id and a current (+ previous) EncodingAESKey."""

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        previous_encoding_aes_key: str | None = None,
        random_prefix: Callable[[], bytes] = alnum_prefix,
    ) -> None:
        self.token = token
        self.receive_id = receive_id
        self._keys = [aes_key(encoding_aes_key)]
        if previous_encoding_aes_key:
            self._keys.append(aes_key(previous_encoding_aes_key))
        self._random_prefix = random_prefix  # tests inject the 16 "random" bytes

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return sha1_signature(self.token, timestamp, nonce, encrypt)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not signatures_equal(self.sign(timestamp, nonce, encrypt), msg_signature):
            raise InvalidSignature("msg_signature mismatch")

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> Decrypted:
        # Signature first: it is cheap and keeps unsigned input away from the cipher.
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt_unverified(encrypt)

    def decrypt_unverified(self, encrypt: str) -> Decrypted:
        """Decrypt with the current key, else the previous one. Call only after `verify`."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPayload("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise InvalidPayload("Encrypt is not a whole number of AES blocks")
        mismatch = False
        for index, key in enumerate(self._keys):
            try:
                msg, receive_id = _open_frame(key, data)
            except InvalidPayload:
                continue  # garbage: most likely the other key
            if hmac.compare_digest(receive_id, self.receive_id.encode()):
                return Decrypted(text=msg, key_index=index)
            mismatch = True
        if mismatch:
            raise ReceiveIdMismatch("message is for another receive_id")
        raise InvalidPayload("message does not decrypt with any configured key")

    def encrypt(self, plaintext: str, *, key_index: int = 0) -> str:
        prefix, msg = self._random_prefix(), plaintext.encode()
        if len(prefix) != 16:
            raise ValueError("random prefix must be 16 bytes")
        frame = prefix + struct.pack(">I", len(msg)) + msg + self.receive_id.encode()
        pad = BLOCK - len(frame) % BLOCK  # 1..32: an exact multiple gets a full block of 0x20
        encryptor = _cipher(self._keys[key_index]).encryptor()
        data = encryptor.update(frame + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(data).decode()

    def seal(self, plaintext: str, *, timestamp: str, nonce: str, key_index: int = 0) -> Sealed:
        encrypt = self.encrypt(plaintext, key_index=key_index)
        return Sealed(encrypt, self.sign(timestamp, nonce, encrypt), timestamp, nonce)


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def _open_frame(key: bytes, data: bytes) -> tuple[str, bytes]:
    """Decrypt, unpad and split a frame into (msg, receive_id); InvalidPayload if malformed."""
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
        raise InvalidPayload("bad padding")
    frame = plain[:-pad]
    if len(frame) < 20:
        raise InvalidPayload("frame too short")
    (length,) = struct.unpack(">I", frame[16:20])
    if length > len(frame) - 20:
        raise InvalidPayload("length field exceeds the frame")
    try:
        msg = frame[20 : 20 + length].decode()
    except UnicodeDecodeError:
        raise InvalidPayload("message is not UTF-8") from None
    return msg, frame[20 + length :]


def cdata(value: str) -> str:
    """A CDATA section holding any text (a "]]>" inside is split across two sections)."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class WeChatCrypto(BizMsgCrypto):
    """Safe-mode (encrypt_type=aes) pushes of an Official Account or mini-program; receive_id = appid."""

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        app_id: str,
        *,
        previous_encoding_aes_key: str | None = None,
        random_prefix: Callable[[], bytes] = alnum_prefix,
    ) -> None:
        super().__init__(
            token,
            encoding_aes_key,
            app_id,
            previous_encoding_aes_key=previous_encoding_aes_key,
            random_prefix=random_prefix,
        )

    @property
    def app_id(self) -> str:
        return self.receive_id

    def check_signature(self, signature: str, timestamp: str, nonce: str) -> bool:
        return check_signature(self.token, signature, timestamp, nonce)

    def decrypt_message(self, body: str | bytes, msg_signature: str, timestamp: str, nonce: str) -> Decrypted:
        """Verify `msg_signature` (not `signature`) over the envelope's Encrypt, then decrypt.

        The envelope is XML `<xml><ToUserName/><Encrypt/></xml>` or mini-program JSON
        `{"ToUserName", "Encrypt"}`; the result remembers which, so the reply matches.
        """
        fmt: Format = "json" if is_json(body) else "xml"
        if fmt == "json":
            fields = parse_json(body)
        else:
            root = parse_xml(body).get("xml")
            fields = root if isinstance(root, dict) else {}
        encrypt, to_user = fields.get("Encrypt"), fields.get("ToUserName")
        if not isinstance(encrypt, str) or not encrypt.strip():
            raise InvalidPayload("envelope has no Encrypt")
        encrypt = encrypt.strip()
        inbound = self.verify_and_decrypt(msg_signature, timestamp, nonce, encrypt)
        to_user = to_user if isinstance(to_user, str) else None
        return Decrypted(inbound.text, inbound.key_index, fmt, to_user)

    def encrypt_message(
        self,
        plaintext: str,
        *,
        fmt: Format = "xml",
        key_index: int = 0,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> str:
        """The encrypted reply body, XML or JSON (`TimeStamp` an int, `Nonce` a string)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sealed = self.seal(plaintext, timestamp=ts, nonce=nonce or random_nonce(), key_index=key_index)
        return render_envelope(sealed, fmt)

    def reply(
        self, inbound: Decrypted, plaintext: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> str:
        """Encrypt a reply the way `inbound` came: same format, same (current or previous) key."""
        return self.encrypt_message(
            plaintext, fmt=inbound.fmt, key_index=inbound.key_index, timestamp=timestamp, nonce=nonce
        )


def render_envelope(sealed: Sealed, fmt: Format = "xml") -> str:
    """`<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>` or its JSON twin."""
    if fmt == "json":
        body = {
            "Encrypt": sealed.encrypt,
            "MsgSignature": sealed.msg_signature,
            "TimeStamp": int(sealed.timestamp),
            "Nonce": sealed.nonce,
        }
        return json.dumps(body, separators=(",", ":"))
    # The nonce may be echoed from the query string, so it goes through cdata() too.
    return (
        f"<xml><Encrypt>{cdata(sealed.encrypt)}</Encrypt>"
        f"<MsgSignature>{cdata(sealed.msg_signature)}</MsgSignature>"
        f"<TimeStamp>{int(sealed.timestamp)}</TimeStamp>"
        f"<Nonce>{cdata(sealed.nonce)}</Nonce></xml>"
    )
