"""Parse WeChat push bodies (plaintext XML or mini-program JSON) into typed fields.

Everything here comes from the network, so every failure is an `InvalidPayload` — never a
KeyError, ExpatError or RecursionError leaking out of the webhook. XML is parsed with expat
directly so that a DOCTYPE (and with it any entity declaration: billion laughs, external
entities) is rejected outright instead of being expanded or silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from channels.errors import InvalidPayload

# Platform pushes are a few KiB; anything this large is not from WeChat.
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 16
# Message times (unix seconds) past this are garbage, whatever a datetime could still hold.
MAX_EPOCH_S = 4_102_444_800  # 2100-01-01

XmlValue = str | dict[str, Any] | list[Any]


def parse_xml(data: str | bytes, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, XmlValue]:
    """Parse XML into `{root_tag: value}`.

    A leaf element becomes its text ("" when empty); an element with children becomes a dict
    of them (a repeated tag becomes a list); attributes and text between children are
    ignored, which is all WeChat/WeCom bodies need.
    """
    if len(data) > max_bytes:
        raise InvalidPayload("XML body too large")
    parser = expat.ParserCreate()
    parser.buffer_text = True
    # (tag, children, text parts) per open element; a list, not recursion, so depth is cheap.
    stack: list[tuple[str, dict[str, Any], list[str]]] = [("", {}, [])]

    def reject_dtd(*_: object) -> None:
        raise InvalidPayload("XML with a DOCTYPE or entity declaration is not accepted")

    def start(tag: str, _attrs: dict[str, str]) -> None:
        if len(stack) > MAX_DEPTH:
            raise InvalidPayload("XML nested too deeply")
        stack.append((tag, {}, []))

    def end(_tag: str) -> None:
        tag, children, text = stack.pop()
        value: XmlValue = children if children else "".join(text)
        siblings = stack[-1][1]
        if tag not in siblings:
            siblings[tag] = value
        elif isinstance(siblings[tag], list):
            siblings[tag].append(value)
        else:
            siblings[tag] = [siblings[tag], value]

    parser.StartDoctypeDeclHandler = reject_dtd
    parser.EntityDeclHandler = reject_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = lambda text: stack[-1][2].append(text)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise InvalidPayload(f"malformed XML: {exc}") from None
    return stack[0][1]


def parse_json(data: str | bytes, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Parse a JSON object body; anything else (array, bad UTF-8, too deep) is InvalidPayload."""
    if len(data) > max_bytes:
        raise InvalidPayload("JSON body too large")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidPayload(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidPayload("JSON body is not an object")
    return value


def is_json(data: str | bytes) -> bool:
    """Mini-programs configured for JSON push a JSON object; everything else is XML."""
    head = data.lstrip()[:1]
    return head in ("{", b"{")


def parse_body(data: str | bytes) -> dict[str, Any]:
    """The fields of a flat body: the children of `<xml>`, or the JSON object."""
    if is_json(data):
        return parse_json(data)
    doc = parse_xml(data)
    root = doc.get("xml")
    if not isinstance(root, dict):
        raise InvalidPayload("XML root must be <xml> with child elements")
    return root


@dataclass(frozen=True, slots=True)
class WeChatMessage:
    """A pushed message or event, fields named as WeChat names them (snake_case)."""

    to_user_name: str
    from_user_name: str
    create_time: int
    msg_type: str
    content: str | None = None
    msg_id: str | None = None
    event: str | None = None
    event_key: str | None = None
    # Every field as received, for message types this class does not spell out.
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def text_field(raw: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise InvalidPayload(f"missing field {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidPayload(f"field {name} must be text")
    return str(value)


def int_field(
    raw: Mapping[str, Any], name: str, *, required: bool = False, maximum: int = 10**20 - 1
) -> int | None:
    value = text_field(raw, name, required=required)
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise InvalidPayload(f"field {name} must be a non-negative integer")
    if int(value) > maximum:
        raise InvalidPayload(f"field {name} must be at most {maximum}")
    return int(value)


def message_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The WeChatMessage fields of a parsed body; shared with WeCom, whose body is a superset."""
    create_time = int_field(raw, "CreateTime", required=True, maximum=MAX_EPOCH_S)
    return {
        "to_user_name": text_field(raw, "ToUserName", required=True),
        "from_user_name": text_field(raw, "FromUserName", required=True),
        "create_time": create_time,
        "msg_type": text_field(raw, "MsgType", required=True),
        "content": text_field(raw, "Content"),
        # Events such as TEMPLATESENDJOBFINISH spell it MsgID.
        "msg_id": text_field(raw, "MsgId") or text_field(raw, "MsgID"),
        "event": text_field(raw, "Event"),
        "event_key": text_field(raw, "EventKey"),
        "raw": raw,
    }


def parse_message(data: str | bytes) -> WeChatMessage:
    """Parse a plaintext (or decrypted) push body, XML or JSON."""
    return WeChatMessage(**message_kwargs(parse_body(data)))


def dedupe_key(msg: WeChatMessage) -> str:
    """Key for "already handled": (ToUserName, FromUserName, CreateTime, MsgId or Event+EventKey).

    MsgId alone has collided across users and FromUserName+CreateTime alone has merged
    different events, so all parts are needed. JSON keeps the parts unambiguous whatever
    characters they contain.
    """
    tail = msg.msg_id if msg.msg_id else f"{msg.event or ''}:{msg.event_key or ''}"
    parts = [msg.to_user_name, msg.from_user_name, msg.create_time, tail]
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
