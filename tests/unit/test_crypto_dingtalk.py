"""DingTalk signatures, event crypto and robot parsing: the official samples as known answers."""

from __future__ import annotations

import json

import pytest

from channels.dingtalk.crypto import (
    DingTalkEventCrypto,
    robot_sign,
    verify_robot_callback,
    webhook_sign,
)
from channels.dingtalk.parser import dedupe_key, parse_event, parse_robot_message
from channels.errors import InvalidPayload, InvalidSignature, ReceiveIdMismatch, StaleTimestamp

# open.dingtalk.com, group robot "加签" example.
WEBHOOK_SECRET, WEBHOOK_TS = "SECthis-is-secret", 1577262236757
WEBHOOK_SIGN = "jX0uMmxlMRXTKrlKjephL/Hmc3c1QcTzPWBeIToNnLs="

# DingTalk's callback crypto demo (DingCallbackCrypto), check_url event.
EVENT_TOKEN, EVENT_AES_KEY, EVENT_APP_KEY = (
    "mryue",
    "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
    "ding6ccabc44d2c8d38b",
)
EVENT_TS, EVENT_NONCE, EVENT_SIGNATURE = (
    "1608001896814",
    "WL4PK6yA",
    "03044561471240d4a14bb09372dfcfd4fd0e40cb",
)
EVENT_ENCRYPT = (
    "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u"
    "+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
)
OLD_AES_KEY = "Q" * 43

APP_SECRET = "gPl2-app-secret-for-tests"
NOW_MS = 1_714_000_000_000
MINUTE_MS = 60_000


def make_events(
    key: str = EVENT_AES_KEY, app_key: str = EVENT_APP_KEY, previous: str | None = None
) -> DingTalkEventCrypto:
    return DingTalkEventCrypto(
        EVENT_TOKEN, key, app_key, previous_aes_key=previous, random_prefix=lambda: b"0123456789ABCDEF"
    )


# --- group robot webhook sign -----------------------------------------------------------------


def test_webhook_sign_official_sample() -> None:
    signed = webhook_sign(WEBHOOK_SECRET, WEBHOOK_TS)
    assert signed.timestamp == "1577262236757"
    assert signed.sign == WEBHOOK_SIGN
    assert signed.sign_urlencoded == "jX0uMmxlMRXTKrlKjephL%2FHmc3c1QcTzPWBeIToNnLs%3D"


# --- enterprise robot callback sign -----------------------------------------------------------


def test_verify_robot_callback_valid_sign_now_accepted() -> None:
    ts = str(NOW_MS - 2000)
    verify_robot_callback(ts, robot_sign(APP_SECRET, ts), APP_SECRET, now_ms=NOW_MS)


def test_verify_robot_callback_sign_formula_matches_webhook_sample() -> None:
    # Same HMAC as the webhook sign: the official sample verifies with its own time as "now".
    verify_robot_callback(str(WEBHOOK_TS), WEBHOOK_SIGN, WEBHOOK_SECRET, now_ms=WEBHOOK_TS)


@pytest.mark.parametrize("offset_ms", [60 * MINUTE_MS, -60 * MINUTE_MS])
def test_verify_robot_callback_exactly_one_hour_off_accepted(offset_ms: int) -> None:
    ts = str(NOW_MS + offset_ms)
    verify_robot_callback(ts, robot_sign(APP_SECRET, ts), APP_SECRET, now_ms=NOW_MS)


@pytest.mark.parametrize("offset_ms", [61 * MINUTE_MS, -61 * MINUTE_MS, 60 * MINUTE_MS + 1])
def test_verify_robot_callback_more_than_one_hour_off_rejected(offset_ms: int) -> None:
    ts = str(NOW_MS + offset_ms)
    with pytest.raises(StaleTimestamp):
        verify_robot_callback(ts, robot_sign(APP_SECRET, ts), APP_SECRET, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("timestamp", "sign"),
    [
        (str(NOW_MS), robot_sign("another-secret", str(NOW_MS))),
        (str(NOW_MS), robot_sign(APP_SECRET, str(NOW_MS + 1))),
        (str(NOW_MS), ""),
        (str(NOW_MS), "签名"),
        ("", robot_sign(APP_SECRET, "")),
        ("1e12", robot_sign(APP_SECRET, "1e12")),
        ("-5", robot_sign(APP_SECRET, "-5")),
    ],
)
def test_verify_robot_callback_wrong_sign_or_timestamp_rejected(timestamp: str, sign: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_robot_callback(timestamp, sign, APP_SECRET, now_ms=NOW_MS)


def test_stale_timestamp_is_an_invalid_signature() -> None:
    assert issubclass(StaleTimestamp, InvalidSignature)  # webhooks answer both with 401/403


# --- event subscription crypto ----------------------------------------------------------------


def test_decrypt_event_official_check_url_sample() -> None:
    events = make_events()
    assert events.sign(EVENT_TS, EVENT_NONCE, EVENT_ENCRYPT) == EVENT_SIGNATURE
    body = json.dumps({"encrypt": EVENT_ENCRYPT})
    inbound = events.decrypt_event(body, EVENT_SIGNATURE, EVENT_TS, EVENT_NONCE)
    assert inbound.text == '{"EventType":"check_url"}'
    assert parse_event(inbound.text).event_type == "check_url"


def test_decrypt_event_wrong_signature_or_app_key_rejected() -> None:
    body = json.dumps({"encrypt": EVENT_ENCRYPT})
    with pytest.raises(InvalidSignature):
        make_events().decrypt_event(body, EVENT_SIGNATURE, EVENT_TS, "WL4PK6yB")
    with pytest.raises(ReceiveIdMismatch):
        make_events(app_key="dingOTHERAPP").decrypt_event(body, EVENT_SIGNATURE, EVENT_TS, EVENT_NONCE)


@pytest.mark.parametrize("body", ["", "{}", '{"encrypt": 1}', '["encrypt"]', "<xml/>", '{"encrypt": "'])
def test_decrypt_event_bad_body_rejected(body: str) -> None:
    with pytest.raises(InvalidPayload):
        make_events().decrypt_event(body, EVENT_SIGNATURE, EVENT_TS, EVENT_NONCE)


def test_success_response_is_encrypted_signed_success() -> None:
    events = make_events()
    response = events.success_response(timestamp_ms=1608001897000, nonce="abcd1234")
    assert set(response) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
    assert (response["timeStamp"], response["nonce"]) == ("1608001897000", "abcd1234")
    back = events.verify_and_decrypt(
        response["msg_signature"], "1608001897000", "abcd1234", response["encrypt"]
    )
    assert back.text == "success"


def test_success_response_default_nonce_and_millisecond_timestamp() -> None:
    response = make_events().success_response()
    assert len(response["nonce"]) == 8 and response["nonce"].isalnum()
    assert len(response["timeStamp"]) == 13  # milliseconds


def test_key_rotation_event_with_previous_key_acknowledged_with_it() -> None:
    old_only = make_events(key=OLD_AES_KEY)
    rotated = make_events(previous=OLD_AES_KEY)
    encrypt = old_only.encrypt('{"EventType":"user_add_org","UserId":["manager1"]}')
    body = json.dumps({"encrypt": encrypt})
    inbound = rotated.decrypt_event(body, rotated.sign("1", "n", encrypt), "1", "n")
    assert inbound.key_index == 1
    response = rotated.success_response(inbound, timestamp_ms=2, nonce="m")
    assert (
        old_only.verify_and_decrypt(response["msg_signature"], "2", "m", response["encrypt"]).text
        == "success"
    )


def test_event_round_trip_chinese_text() -> None:
    events = make_events()
    plain = json.dumps({"EventType": "bpms_task_change", "title": "订单审批：华东经销商"}, ensure_ascii=False)
    encrypt = events.encrypt(plain)
    assert events.verify_and_decrypt(events.sign("1", "n", encrypt), "1", "n", encrypt).text == plain


# --- robot callback parsing -------------------------------------------------------------------


def robot_body(**overrides: object) -> dict:
    body: dict = {
        "conversationId": "cidQ9b1oKkE1ZI0h3c3oD9vTA==",
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$abc"}],
        "chatbotCorpId": "ding9f50b15bccd16741",
        "chatbotUserId": "$:LWCP_v1:$robot",
        "msgId": "msgS6wqOsvbzT8GnXbJcHJKkw==",
        "senderNick": "张三",
        "isAdmin": False,
        "senderStaffId": "manager4220",
        "sessionWebhookExpiredTime": 1714005400000,
        "createAt": 1714000000000,
        "senderCorpId": "ding9f50b15bccd16741",
        "conversationType": "2",
        "senderId": "$:LWCP_v1:$sender",
        "conversationTitle": "华东销售群",
        "isInAtList": True,
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=abc",
        "text": {"content": " 查库存 M3螺丝 "},
        "robotCode": "dingrobot123",
        "msgtype": "text",
    }
    body.update(overrides)
    return body


def test_parse_robot_message_fields() -> None:
    msg = parse_robot_message(json.dumps(robot_body(), ensure_ascii=False).encode())
    assert msg.text == "查库存 M3螺丝"
    assert msg.sender_staff_id == "manager4220"
    assert (msg.msg_id, msg.conversation_id, msg.conversation_type) == (
        "msgS6wqOsvbzT8GnXbJcHJKkw==",
        "cidQ9b1oKkE1ZI0h3c3oD9vTA==",
        "2",
    )
    assert msg.is_group
    assert msg.session_webhook == "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
    assert (msg.session_webhook_expired_time, msg.create_at) == (1714005400000, 1714000000000)
    assert (msg.robot_code, msg.sender_nick) == ("dingrobot123", "张三")
    assert dedupe_key(msg) == "msgS6wqOsvbzT8GnXbJcHJKkw=="


def test_parse_robot_message_outsider_has_no_staff_id() -> None:
    body = robot_body(conversationType="1")
    del body["senderStaffId"]
    msg = parse_robot_message(body)
    assert msg.sender_staff_id is None
    assert not msg.is_group


def test_parse_robot_message_rich_text_and_picture() -> None:
    rich = robot_body(msgtype="richText", content={"richText": [{"text": " 下单 "}, {"downloadCode": "x"}]})
    del rich["text"]
    assert parse_robot_message(rich).text == "下单"
    picture = robot_body(msgtype="picture", content={"downloadCode": "x"})
    del picture["text"]
    assert parse_robot_message(picture).text == ""


@pytest.mark.parametrize(
    "overrides",
    [
        {"msgId": None},
        {"msgId": ""},
        {"msgtype": 5},
        {"text": "hello"},
        {"text": {"content": None}},
        {"conversationType": "3"},
        {"conversationType": 2},
        {"conversationId": None},
        {"createAt": "1714000000000"},
        {"createAt": True},
        {"sessionWebhookExpiredTime": -1},
        {"senderStaffId": 42},
    ],
)
def test_parse_robot_message_bad_shape_rejected(overrides: dict) -> None:
    body = {k: v for k, v in robot_body(**overrides).items() if v is not None}
    with pytest.raises(InvalidPayload):
        parse_robot_message(json.dumps(body))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe{}", b"{" * 10, b"[" * 100_000])
def test_parse_robot_message_not_a_json_object_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse_robot_message(raw)


@pytest.mark.parametrize("plain", ["{}", '{"EventType": ""}', "[]", "nope"])
def test_parse_event_without_event_type_rejected(plain: str) -> None:
    with pytest.raises(InvalidPayload):
        parse_event(plain)
