"""WeCom callback crypto and parser: the official echostr sample as a known answer."""

from __future__ import annotations

import pytest

from channels.errors import InvalidPayload, InvalidSignature, ReceiveIdMismatch
from channels.wechat.parser import parse_xml
from channels.wechat.replies import text_reply_to
from channels.wecom.crypto import WeComCrypto
from channels.wecom.parser import dedupe_key, parse_message

# developer.work.weixin.qq.com, "回调配置" example.
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
OLD_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "ww1436e0e65a779aee"
ECHO_SIGNATURE, ECHO_TIMESTAMP, ECHO_NONCE = (
    "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "1476416373",
    "47744683",
)
ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="

MESSAGE_XML = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>"
    "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1476422779</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[报备 上海某某有限公司 13800000000]]></Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)


def make_crypto(key: str = AES_KEY, corp_id: str = CORP_ID, previous: str | None = None) -> WeComCrypto:
    return WeComCrypto(
        TOKEN, key, corp_id, previous_encoding_aes_key=previous, random_prefix=lambda: b"aaaabbbbccccdddd"
    )


def envelope(crypto: WeComCrypto, plaintext: str, ts: str = "1476422779", nonce: str = "1") -> tuple:
    encrypt = crypto.encrypt(plaintext)
    body = f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
    body += "<AgentID><![CDATA[1000002]]></AgentID></xml>"
    return body, crypto.sign(ts, nonce, encrypt), ts, nonce


def test_verify_url_official_sample_returns_plaintext() -> None:
    crypto = make_crypto()
    assert crypto.sign(ECHO_TIMESTAMP, ECHO_NONCE, ECHOSTR) == ECHO_SIGNATURE
    assert crypto.verify_url(ECHO_SIGNATURE, ECHO_TIMESTAMP, ECHO_NONCE, ECHOSTR) == "1288432023552776189"


def test_verify_url_plus_decoded_as_space_still_verifies() -> None:
    form_decoded = ECHOSTR.replace("+", " ")
    assert make_crypto().verify_url(ECHO_SIGNATURE, ECHO_TIMESTAMP, ECHO_NONCE, form_decoded) == (
        "1288432023552776189"
    )


def test_verify_url_wrong_signature_or_corp_rejected() -> None:
    with pytest.raises(InvalidSignature):
        make_crypto().verify_url("0" * 40, ECHO_TIMESTAMP, ECHO_NONCE, ECHOSTR)
    with pytest.raises(InvalidSignature):
        make_crypto().verify_url(ECHO_SIGNATURE, "1476416374", ECHO_NONCE, ECHOSTR)
    with pytest.raises(ReceiveIdMismatch):
        make_crypto(corp_id="ww0000000000000000").verify_url(
            ECHO_SIGNATURE, ECHO_TIMESTAMP, ECHO_NONCE, ECHOSTR
        )


def test_decrypt_message_envelope_then_parse_gives_agent_and_chinese_text() -> None:
    crypto = make_crypto()
    inbound = crypto.decrypt_message(*envelope(crypto, MESSAGE_XML))
    assert inbound.text == MESSAGE_XML
    assert inbound.to_user_name == CORP_ID
    msg = parse_message(inbound.text)
    assert (msg.to_user_name, msg.from_user_name, msg.agent_id) == (CORP_ID, "zhangsan", 1000002)
    assert (msg.msg_type, msg.content, msg.msg_id) == (
        "text",
        "报备 上海某某有限公司 13800000000",
        "1456453720",
    )


def test_decrypt_message_wrong_corp_rejected() -> None:
    body, sig, ts, nonce = envelope(make_crypto(corp_id="wwOTHERCORP"), MESSAGE_XML)
    with pytest.raises(ReceiveIdMismatch):
        make_crypto().decrypt_message(body, sig, ts, nonce)


def test_smart_robot_callbacks_use_empty_receive_id() -> None:
    robot = make_crypto(corp_id="")
    body, sig, ts, nonce = envelope(robot, '{"msgtype":"text"}')
    assert robot.decrypt_message(body, sig, ts, nonce).text == '{"msgtype":"text"}'
    with pytest.raises(ReceiveIdMismatch):
        make_crypto().decrypt_message(body, sig, ts, nonce)


def test_reply_is_encrypted_xml_with_the_key_that_worked() -> None:
    old_only = make_crypto(key=OLD_AES_KEY)
    rotated = make_crypto(previous=OLD_AES_KEY)
    inbound = rotated.decrypt_message(*envelope(old_only, MESSAGE_XML))
    assert inbound.key_index == 1
    answer = text_reply_to(parse_message(inbound.text), "已报备", create_time=1476422780)
    reply = parse_xml(rotated.reply(inbound, answer, timestamp=1476422780, nonce="5"))["xml"]
    assert set(reply) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert (
        old_only.verify_and_decrypt(reply["MsgSignature"], "1476422780", "5", reply["Encrypt"]).text == answer
    )


@pytest.mark.parametrize(
    "body",
    [
        '<!DOCTYPE x [<!ENTITY e "1">]><xml><Encrypt>&e;</Encrypt></xml>',
        "<xml><Encrypt>abc</Encrypt>",
        "<xml><AgentID>1</AgentID></xml>",
    ],
)
def test_decrypt_message_bad_envelope_rejected(body: str) -> None:
    with pytest.raises(InvalidPayload):
        make_crypto().decrypt_message(body, ECHO_SIGNATURE, ECHO_TIMESTAMP, ECHO_NONCE)


def test_parse_message_bad_agent_id_rejected() -> None:
    with pytest.raises(InvalidPayload):
        parse_message(MESSAGE_XML.replace("<AgentID>1000002</AgentID>", "<AgentID>app</AgentID>"))


def test_dedupe_key_includes_agent() -> None:
    msg = parse_message(MESSAGE_XML)
    other_app = parse_message(MESSAGE_XML.replace("1000002", "1000003"))
    assert dedupe_key(msg) == dedupe_key(parse_message(MESSAGE_XML))
    assert dedupe_key(msg) != dedupe_key(other_app)
