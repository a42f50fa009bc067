"""WeCom callback crypto: echostr URL verification and encrypted XML messages/replies.

Same AES scheme as WeChat (`BizMsgCrypto`) with receive_id = corp_id ("" for smart-robot
callbacks). Unlike WeChat, even the GET URL check is encrypted and signed with msg_signature.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from channels.errors import InvalidPayload
from channels.wechat.crypto import BizMsgCrypto, Decrypted, alnum_prefix, random_nonce, render_envelope
from channels.wechat.parser import parse_xml


class WeComCrypto(BizMsgCrypto):
    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        corp_id: str,
        *,
        previous_encoding_aes_key: str | None = None,
        random_prefix: Callable[[], bytes] = alnum_prefix,
    ) -> None:
        super().__init__(
            token,
            encoding_aes_key,
            corp_id,
            previous_encoding_aes_key=previous_encoding_aes_key,
            random_prefix=random_prefix,
        )

    @property
    def corp_id(self) -> str:
        return self.receive_id

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """GET ?msg_signature&timestamp&nonce&echostr: the plaintext to answer (no quotes/newline).

        `echostr` must be the URL-decoded query value. A "+" left unescaped by the platform
        arrives as a space after form decoding; base64 has no spaces, so put it back.
        """
        echostr = echostr.replace(" ", "+")
        return self.verify_and_decrypt(msg_signature, timestamp, nonce, echostr).text

    def decrypt_message(self, body: str | bytes, msg_signature: str, timestamp: str, nonce: str) -> Decrypted:
        """POST `<xml><ToUserName/><Encrypt/><AgentID/></xml>` -> the decrypted message XML."""
        root = parse_xml(body).get("xml")
        fields = root if isinstance(root, dict) else {}
        encrypt, to_user = fields.get("Encrypt"), fields.get("ToUserName")
        if not isinstance(encrypt, str) or not encrypt.strip():
            raise InvalidPayload("envelope has no Encrypt")
        inbound = self.verify_and_decrypt(msg_signature, timestamp, nonce, encrypt.strip())
        to_user = to_user if isinstance(to_user, str) else None
        return Decrypted(inbound.text, inbound.key_index, "xml", to_user)

    def encrypt_message(
        self, plaintext: str, *, key_index: int = 0, timestamp: int | None = None, nonce: str | None = None
    ) -> str:
        """The encrypted passive reply `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sealed = self.seal(plaintext, timestamp=ts, nonce=nonce or random_nonce(), key_index=key_index)
        return render_envelope(sealed, "xml")

    def reply(
        self, inbound: Decrypted, plaintext: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> str:
        """Encrypt a reply with the key `inbound` was decrypted with."""
        return self.encrypt_message(plaintext, key_index=inbound.key_index, timestamp=timestamp, nonce=nonce)
