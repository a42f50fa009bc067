"""WeChat crypto, parser and replies: the official samples (PLATFORMS.md) as known answers."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import PrpCrypto

from channels.errors import InvalidPayload, InvalidSignature, ReceiveIdMismatch
from channels.wechat.crypto import BizMsgCrypto, WeChatCrypto, aes_key, check_signature, sha1_signature
from channels.wechat.parser import dedupe_key, parse_message, parse_xml
from channels.wechat.replies import text_reply, text_reply_to

TOKEN = "AAAAA"
AES_KEY = "A" * 43
OLD_AES_KEY = "B" * 43
APP_ID = "wxba5fad812f8e6fb9"

# developers.weixin.qq.com, mini-program "消息推送" guide, safe-mode example (JSON format).
SAMPLE_TIMESTAMP, SAMPLE_NONCE = "1714112445", "415670741"
SAMPLE_MSG_SIGNATURE = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
SAMPLE_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzaz"
    "hZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSq"
    "FIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
)
SAMPLE_PLAIN = (
    '{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY",'
    '"CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
)
REPLY_PLAIN, REPLY_TS, REPLY_NONCE = '{"demo_resp":"good luck"}', 1713424427, "415670741"
SAMPLE_REPLY = {
    "Encrypt": "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==",
    "MsgSignature": "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1",
    "TimeStamp": 1713424427,
    "Nonce": "415670741",
}


def make_crypto(
    key: str = AES_KEY, app_id: str = APP_ID, previous: str | None = None, prefix: bytes = b"707722b803182950"
) -> WeChatCrypto:
    return WeChatCrypto(TOKEN, key, app_id, previous_encoding_aes_key=previous, random_prefix=lambda: prefix)


def raw_plain(key: str, encrypt: str) -> bytes:
    """AES-decrypt without unpadding, to look at the frame and padding themselves."""
    k = aes_key(key)
    decryptor = Cipher(algorithms.AES(k), modes.CBC(k[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def envelope_xml(encrypt: str) -> str:
    return f"<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt>{encrypt}</Encrypt></xml>"


def signed(crypto: BizMsgCrypto, encrypt: str, timestamp: str = "1714112445", nonce: str = "1") -> tuple:
    return crypto.sign(timestamp, nonce, encrypt), timestamp, nonce


# --- signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "timestamp", "nonce"),
    [
        ("f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492"),  # URL check
        ("899cf89e464efb63f54ddac96b0a0a235f53aa78", "1714037059", "486452656"),  # plaintext POST
        ("6c5c811b55cc85e0e1b54100749188c20beb3f5d", SAMPLE_TIMESTAMP, SAMPLE_NONCE),  # safe-mode query
    ],
)
def test_check_signature_official_samples_valid(signature: str, timestamp: str, nonce: str) -> None:
    assert check_signature(TOKEN, signature, timestamp, nonce)
    assert make_crypto().check_signature(signature, timestamp, nonce)


@pytest.mark.parametrize("bad", ["f464b24fc39322e44b38aa78f5edd27bd1441697", "", "签名", "F464B24FC39322E4"])
def test_check_signature_wrong_or_non_ascii_returns_false(bad: str) -> None:
    assert not check_signature(TOKEN, bad, "1714036504", "1514711492")


def test_msg_signature_official_sample_sorts_four_values() -> None:
    assert sha1_signature(TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT) == SAMPLE_MSG_SIGNATURE
    assert make_crypto().sign(SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT) == SAMPLE_MSG_SIGNATURE


# --- official decrypt / encrypt samples -------------------------------------------------------


def test_decrypt_message_official_json_sample_gives_event() -> None:
    body = json.dumps({"ToUserName": "gh_97417a04a28d", "Encrypt": SAMPLE_ENCRYPT})
    inbound = make_crypto().decrypt_message(body, SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE)
    assert inbound.text == SAMPLE_PLAIN
    assert (inbound.fmt, inbound.key_index, inbound.to_user_name) == ("json", 0, "gh_97417a04a28d")
    msg = parse_message(inbound.text)
    assert (msg.msg_type, msg.event, msg.msg_id, msg.create_time) == ("event", "debug_demo", None, 1714112445)
    assert msg.raw["debug_str"] == "hello world"


def test_decrypt_message_official_sample_in_xml_envelope_remembers_xml() -> None:
    body = envelope_xml(SAMPLE_ENCRYPT).encode()
    inbound = make_crypto().decrypt_message(body, SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE)
    assert (inbound.text, inbound.fmt) == (SAMPLE_PLAIN, "xml")


def test_decrypt_message_with_plain_signature_instead_of_msg_signature_rejected() -> None:
    body = envelope_xml(SAMPLE_ENCRYPT)
    with pytest.raises(InvalidSignature):
        make_crypto().decrypt_message(
            body, "6c5c811b55cc85e0e1b54100749188c20beb3f5d", SAMPLE_TIMESTAMP, SAMPLE_NONCE
        )


def test_encrypt_message_official_reply_sample_json_exact() -> None:
    crypto = make_crypto(prefix=b"707722b803182950")
    body = crypto.encrypt_message(REPLY_PLAIN, fmt="json", timestamp=REPLY_TS, nonce=REPLY_NONCE)
    assert json.loads(body) == SAMPLE_REPLY
    assert isinstance(json.loads(body)["TimeStamp"], int)


def test_reply_to_json_inbound_uses_json_and_xml_inbound_uses_xml() -> None:
    crypto = make_crypto()
    query = (SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE)
    json_in = crypto.decrypt_message(json.dumps({"Encrypt": SAMPLE_ENCRYPT}), *query)
    json_reply = crypto.reply(json_in, REPLY_PLAIN, timestamp=REPLY_TS, nonce=REPLY_NONCE)
    assert json.loads(json_reply) == SAMPLE_REPLY
    xml_in = crypto.decrypt_message(envelope_xml(SAMPLE_ENCRYPT), *query)
    xml_reply = crypto.reply(xml_in, REPLY_PLAIN, timestamp=REPLY_TS, nonce=REPLY_NONCE)
    assert parse_xml(xml_reply) == {"xml": {k: str(v) for k, v in SAMPLE_REPLY.items()}}


def test_reply_xml_round_trips_through_verify_and_decrypt() -> None:
    crypto = make_crypto(prefix=b"0123456789abcdef")
    xml = text_reply("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "gh_97417a04a28d", "收到", create_time=1714112445)
    fields = parse_xml(crypto.encrypt_message(xml, nonce="n]]>1", timestamp=1714112446))["xml"]
    assert fields["Nonce"] == "n]]>1"
    query = fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
    assert crypto.verify_and_decrypt(*query, fields["Encrypt"]).text == xml


# --- frame: bytes not characters, padding block of 32 -----------------------------------------


def test_encrypt_chinese_length_field_counts_utf8_bytes() -> None:
    text = "你好，渠道！库存还有吗？" * 3
    crypto = make_crypto()
    encrypt = crypto.encrypt(text)
    plain = raw_plain(AES_KEY, encrypt)
    (length,) = struct.unpack(">I", plain[16:20])
    assert length == len(text.encode()) != len(text)
    assert crypto.decrypt_unverified(encrypt).text == text


@pytest.mark.parametrize("msg", ["x" * 26, "y" * 58, "中" * 8 + "ab", "{}" + "z" * 88])
def test_encrypt_frame_multiple_of_32_gets_full_padding_block(msg: str) -> None:
    frame_len = 16 + 4 + len(msg.encode()) + len(APP_ID)
    assert frame_len % 32 == 0
    crypto = make_crypto()
    encrypt = crypto.encrypt(msg)
    plain = raw_plain(AES_KEY, encrypt)
    assert len(plain) == frame_len + 32
    assert plain[-32:] == b"\x20" * 32
    assert crypto.decrypt_unverified(encrypt).text == msg


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_encrypt_then_decrypt_any_text_round_trips(text: str) -> None:
    crypto = make_crypto()
    encrypt = crypto.encrypt(text)
    assert len(base64.b64decode(encrypt)) % 32 == 0
    ts, nonce = "1714112445", "99"
    assert crypto.verify_and_decrypt(crypto.sign(ts, nonce, encrypt), ts, nonce, encrypt).text == text


def test_frames_interoperate_with_wechatpy_prpcrypto() -> None:
    text = "<xml><Content><![CDATA[查库存 螺丝钉M3]]></Content></xml>"
    ours = make_crypto().encrypt(text)
    assert PrpCrypto(aes_key(AES_KEY)).decrypt(ours, APP_ID) == text
    theirs = PrpCrypto(aes_key(AES_KEY)).encrypt(text, APP_ID).decode()
    assert make_crypto().decrypt_unverified(theirs).text == text


# --- rejections -------------------------------------------------------------------------------


def test_decrypt_wrong_receive_id_rejected() -> None:
    encrypt = make_crypto(app_id="wx0000000000000000").encrypt("hi")
    crypto = make_crypto()
    with pytest.raises(ReceiveIdMismatch):
        crypto.verify_and_decrypt(*signed(crypto, encrypt), encrypt)


def test_decrypt_wrong_signature_rejected_before_decrypting() -> None:
    crypto = make_crypto()
    encrypt = crypto.encrypt("hi")
    sig, ts, nonce = signed(crypto, encrypt)
    with pytest.raises(InvalidSignature):
        crypto.verify_and_decrypt(sig, ts, "2", encrypt)
    with pytest.raises(InvalidSignature):
        crypto.decrypt_message(envelope_xml(encrypt), "0" * 40, ts, nonce)


@pytest.mark.parametrize("position", [0, 20, -1, -17])
def test_decrypt_tampered_ciphertext_rejected(position: int) -> None:
    crypto = make_crypto()
    data = bytearray(base64.b64decode(crypto.encrypt("订单 SO-20240101-0001")))
    data[position] ^= 0x5A
    tampered = base64.b64encode(bytes(data)).decode()
    with pytest.raises(InvalidSignature):  # a tampered body no longer matches its signature
        crypto.verify_and_decrypt(crypto.sign("1", "2", crypto.encrypt("x")), "1", "2", tampered)
    with pytest.raises(InvalidPayload):  # even re-signed (token leaked), the frame check fails
        crypto.verify_and_decrypt(*signed(crypto, tampered), tampered)


@pytest.mark.parametrize("encrypt", ["not base64!", "QUJD", base64.b64encode(b"x" * 17).decode(), "密文"])
def test_decrypt_garbage_encrypt_rejected_as_invalid_payload(encrypt: str) -> None:
    crypto = make_crypto()
    with pytest.raises(InvalidPayload):
        crypto.verify_and_decrypt(*signed(crypto, encrypt), encrypt)


def test_aes_key_bad_config_raises_value_error() -> None:
    with pytest.raises(ValueError):
        aes_key("A" * 42)
    with pytest.raises(ValueError):
        aes_key("!" * 43)
    with pytest.raises(ValueError):
        make_crypto(prefix=b"short").encrypt("x")


# --- key rotation -----------------------------------------------------------------------------


def test_key_rotation_previous_key_decrypts_and_reply_uses_it() -> None:
    old_only = make_crypto(key=OLD_AES_KEY)
    rotated = make_crypto(key=AES_KEY, previous=OLD_AES_KEY)
    encrypt = old_only.encrypt("<xml><Content>hi</Content></xml>")
    inbound = rotated.decrypt_message(envelope_xml(encrypt), *signed(rotated, encrypt))
    assert (inbound.text, inbound.key_index) == ("<xml><Content>hi</Content></xml>", 1)

    reply = parse_xml(rotated.reply(inbound, "pong", timestamp=1714112445, nonce="7"))["xml"]
    back = old_only.verify_and_decrypt(reply["MsgSignature"], "1714112445", "7", reply["Encrypt"])
    assert back.text == "pong"
    with pytest.raises(InvalidPayload):
        make_crypto(key=AES_KEY).decrypt_unverified(reply["Encrypt"])


def test_key_rotation_current_key_preferred_and_unknown_key_rejected() -> None:
    rotated = make_crypto(key=AES_KEY, previous=OLD_AES_KEY)
    assert rotated.decrypt_unverified(make_crypto().encrypt("a")).key_index == 0
    stranger = make_crypto(key="C" * 43).encrypt("a")
    with pytest.raises(InvalidPayload):
        rotated.decrypt_unverified(stranger)


# --- envelope and message parsing -------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<xml><ToUserName>&c;</ToUserName><Encrypt>QUJD</Encrypt></xml>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>&x;</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType></xml>"""


@pytest.mark.parametrize(
    "body",
    [
        "<xml><Encrypt>abc</Encrypt>",  # unclosed
        "<xml><Encrypt>abc</Wrong></xml>",
        "not xml at all",
        "",
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        '<!DOCTYPE xml SYSTEM "http://evil.example/x.dtd"><xml><Encrypt>a</Encrypt></xml>',
        "<xml><ToUserName>gh</ToUserName></xml>",  # no Encrypt
        "<xml><Encrypt><a>nested</a></Encrypt></xml>",
        '{"Encrypt": 12}',
        '{"Encrypt": "a"',
        '["Encrypt"]',
        "<root><Encrypt>abc</Encrypt></root>",
        "<xml>" + "<a>" * 50 + "</a>" * 50 + "</xml>",
        b"<xml><Encrypt>\xff\xfe</Encrypt></xml>",
    ],
)
def test_decrypt_message_bad_envelope_raises_invalid_payload(body: str | bytes) -> None:
    with pytest.raises(InvalidPayload):
        make_crypto().decrypt_message(body, SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, "<xml><a>1</a>", "x" * 300_000])
def test_parse_xml_hostile_or_broken_input_raises_invalid_payload(body: str) -> None:
    with pytest.raises(InvalidPayload):
        parse_xml(body)


TEXT_XML = """<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>
<FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName>
<CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[ 查库存 &lt;M3&gt; ]]></Content><MsgId>24543219512345678</MsgId></xml>"""


def test_parse_message_text_xml_fields() -> None:
    msg = parse_message(TEXT_XML.encode())
    assert msg.to_user_name == "gh_97417a04a28d"
    assert msg.from_user_name == "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
    assert (msg.create_time, msg.msg_type, msg.msg_id) == (1714037059, "text", "24543219512345678")
    assert msg.content == " 查库存 &lt;M3&gt; "  # CDATA is literal; the handler decides on stripping
    assert msg.event is None


def test_parse_message_event_xml_and_nested_fields_kept_raw() -> None:
    xml = (
        "<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>STOCK</EventKey>"
        "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>"
        "<List><item>a</item><item>b</item></List></xml>"
    )
    msg = parse_message(xml)
    assert (msg.event, msg.event_key, msg.msg_id) == ("CLICK", "STOCK", None)
    assert msg.raw["ScanCodeInfo"] == {"ScanType": "qrcode", "ScanResult": "1"}
    assert msg.raw["List"] == {"item": ["a", "b"]}


@pytest.mark.parametrize(
    "body",
    [
        TEXT_XML.replace("<CreateTime>1714037059</CreateTime>", "<CreateTime>soon</CreateTime>"),
        TEXT_XML.replace("<CreateTime>1714037059</CreateTime>", "<CreateTime>-5</CreateTime>"),
        TEXT_XML.replace("<FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName>", ""),
        TEXT_XML.replace("<Content><![CDATA[ 查库存 &lt;M3&gt; ]]></Content>", "<Content><b>x</b></Content>"),
        '{"ToUserName": "gh", "FromUserName": "o", "CreateTime": 1.5, "MsgType": "text"}',
        '{"ToUserName": "gh", "FromUserName": ["o"], "CreateTime": 1, "MsgType": "text"}',
        '{"ToUserName": "gh", "FromUserName": "o", "CreateTime": true, "MsgType": "text"}',
        "<xml></xml>",
        "[" * 100_000,
    ],
)
def test_parse_message_bad_shape_raises_invalid_payload(body: str) -> None:
    with pytest.raises(InvalidPayload):
        parse_message(body)


def test_dedupe_key_distinguishes_users_and_events_but_not_retries() -> None:
    base = parse_message(TEXT_XML)
    assert dedupe_key(base) == dedupe_key(parse_message(TEXT_XML))  # a retry is the same message
    other_user = parse_message(TEXT_XML.replace("o9AgO5Kd5ggOC", "oOTHERUSER000"))
    assert dedupe_key(other_user) != dedupe_key(base)  # same MsgId, different user (WxJava#333)

    def event(key: str) -> str:
        return (
            "<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>1</CreateTime>"
            f"<MsgType>event</MsgType><Event>CLICK</Event><EventKey>{key}</EventKey></xml>"
        )

    # Same user and second, different menu keys: two events (WxJava#2705).
    assert dedupe_key(parse_message(event("STOCK"))) != dedupe_key(parse_message(event("ORDERS")))


# --- passive replies --------------------------------------------------------------------------


def test_text_reply_exact_xml() -> None:
    assert text_reply("oUser", "gh_acc", "库存：12 件", create_time=1714037060) == (
        "<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_acc]]></FromUserName>"
        "<CreateTime>1714037060</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[库存：12 件]]></Content></xml>"
    )


def test_text_reply_with_cdata_terminator_and_control_chars_stays_valid_xml() -> None:
    msg = parse_message(TEXT_XML)
    reply = parse_xml(text_reply_to(msg, "客户 A]]><x/>公司\x00\x07 完成", create_time=5))["xml"]
    assert reply["Content"] == "客户 A]]><x/>公司 完成"
    assert (reply["ToUserName"], reply["FromUserName"]) == (msg.from_user_name, msg.to_user_name)
