"""DingTalk signatures and event-subscription crypto.

- Enterprise robot callback: headers `timestamp` (ms) and `sign`; `verify_robot_callback`.
- Group robot webhook: `webhook_sign` for `/robot/send?access_token=&timestamp=&sign=`.
- Event subscription: WeChat's AES scheme with receive_id = appKey (or corpId / suiteKey),
  answered with an encrypted "success".

Both robot signs are base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

from channels.errors import InvalidPayload, InvalidSignature, StaleTimestamp
from channels.wechat.crypto import BizMsgCrypto, Decrypted, alnum_prefix, signatures_equal
from channels.wechat.parser import parse_json

ONE_HOUR_MS = 60 * 60 * 1000
SUCCESS = "success"


def robot_sign(secret: str, timestamp: str | int) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), not URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_robot_callback(
    timestamp: str, sign: str, app_secret: str, *, now_ms: int, max_skew_ms: int = ONE_HOUR_MS
) -> None:
    """Check the `timestamp` and `sign` headers of an enterprise robot callback.

    Raises InvalidSignature, or StaleTimestamp when |now - timestamp| > 1 h. The sign covers
    only the timestamp, so the webhook must still dedupe on msgId against replays.
    """
    ts = timestamp.strip()
    if not (ts.isascii() and ts.isdigit()) or len(ts) > 16:
        raise InvalidSignature("timestamp header must be milliseconds")
    if not signatures_equal(robot_sign(app_secret, ts), sign.strip()):
        raise InvalidSignature("sign mismatch")
    if abs(now_ms - int(ts)) > max_skew_ms:
        raise StaleTimestamp("timestamp more than 1 hour from now")


@dataclass(frozen=True, slots=True)
class WebhookSign:
    timestamp: str
    sign: str  # raw base64: for a client that URL-encodes query params itself (aiohttp params=)
    sign_urlencoded: str  # for a URL assembled by hand; never feed it to params= (double-encoded)


def webhook_sign(secret: str, timestamp_ms: int) -> WebhookSign:
    """The `timestamp` and `sign` query parameters of a group robot webhook call."""
    sign = robot_sign(secret, timestamp_ms)
    return WebhookSign(str(timestamp_ms), sign, quote_plus(sign))


def random_nonce() -> str:
    # DingTalk's own SDKs use 8 alphanumeric characters.
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))


class DingTalkEventCrypto(BizMsgCrypto):
    """Event subscription callbacks: body `{"encrypt"}`, signed over sorted [token, ts, nonce, encrypt]."""

    def __init__(
        self,
        token: str,
        aes_key: str,
        app_key: str,
        *,
        previous_aes_key: str | None = None,
        random_prefix: Callable[[], bytes] = alnum_prefix,
    ) -> None:
        super().__init__(
            token, aes_key, app_key, previous_encoding_aes_key=previous_aes_key, random_prefix=random_prefix
        )

    def decrypt_event(self, body: str | bytes, msg_signature: str, timestamp: str, nonce: str) -> Decrypted:
        """Verify and decrypt `{"encrypt": ...}`; the query names vary (signature|msg_signature,
        timestamp|timeStamp), the webhook passes whichever came."""
        encrypt = parse_json(body).get("encrypt")
        if not isinstance(encrypt, str) or not encrypt.strip():
            raise InvalidPayload("body has no encrypt")
        inbound = self.verify_and_decrypt(msg_signature, timestamp, nonce, encrypt.strip())
        return Decrypted(inbound.text, inbound.key_index, "json")

    def encrypt_response(
        self,
        plaintext: str = SUCCESS,
        *,
        key_index: int = 0,
        timestamp_ms: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """`{"msg_signature", "timeStamp", "nonce", "encrypt"}`; DingTalk wants even "success" encrypted."""
        ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        sealed = self.seal(plaintext, timestamp=ts, nonce=nonce or random_nonce(), key_index=key_index)
        return {
            "msg_signature": sealed.msg_signature,
            "timeStamp": sealed.timestamp,
            "nonce": sealed.nonce,
            "encrypt": sealed.encrypt,
        }

    def success_response(
        self, inbound: Decrypted | None = None, *, timestamp_ms: int | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The encrypted "success" acknowledging `inbound`, with the key it came with."""
        key_index = inbound.key_index if inbound else 0
        return self.encrypt_response(SUCCESS, key_index=key_index, timestamp_ms=timestamp_ms, nonce=nonce)
