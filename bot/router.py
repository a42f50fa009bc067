"""Intent routing, one router per feature (as aiogram does), composed by `root_router`.

A rule is a filter plus a handler. The filter parses and returns what the handler needs
(the text after a command, a regex match, the pending conversation state), so a handler is
a few lines: parse -> call one use-case -> render text. Dispatch order:

1. the sender's pending conversation state (a handler may decline by returning None),
2. commands (the text starts with a keyword: "查库存 螺纹钢", "查库存螺纹钢"), matched on the
   canonical command `bot.understand` reads from free wording ("有没有螺纹钢的", "你好，帮我查
   一下螺纹钢库存" -> "查库存 螺纹钢"; "这个月提成多少" -> "佣金"), else on the text as typed,
3. patterns (free text: "螺纹钢还有货吗"),
4. the fallback (help) — unknown text is never met with silence.

Events (subscribe, menu clicks) are rules too. A rule that needs a bound user answers an
unbound sender with how to bind, before the handler runs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.conversation import Conversation, State
from bot.message import Message, Reply
from bot.understand import understand
from handlers.actor import Actor

# Longer chat text is answered with TOO_LONG_TEXT and never parsed: every intent's parsing is
# then bounded, whatever a regex or a fuzzy match costs per character.
MAX_TEXT_CHARS = 500
TOO_LONG_TEXT = f"消息太长了（最多 {MAX_TEXT_CHARS} 字），没有处理。请精简后重新发送，或分几条发送。"

BIND_HINT = "您还没有绑定账号。请向管理员索取邀请码，然后发送：\n绑定 邀请码\n例如：绑定 7KQ2M9XD"

_KEY_SAFE = re.compile(r"[\x21-\x7e]{1,128}")

Result = str | Reply | None
Handler = Callable[["ChatContext", Any], Awaitable[Result]]


@dataclass
class ChatContext:
    """What an intent handler gets: the message, the sender's Actor (None if unbound) and
    the conversation state store."""

    message: Message
    conversation: Conversation
    actor: Actor | None = None
    state: State | None = None
    router: Router | None = None  # the dispatching (root) router, set by `dispatch`
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return clean_text(self.message.text)

    @property
    def me(self) -> Actor:
        assert self.actor is not None  # rules with needs_actor=True only run with an actor
        return self.actor

    def has_other_intent(self) -> bool:
        """True when a command or a free-text pattern would take the text: a state handler
        that cannot use it lets it pass."""
        return self.router is not None and self.router.recognises(self.text)

    def idempotency_key(self, conv_id: str) -> str:
        """Deterministic per conversation: a re-sent 确认 never makes a second order."""
        sender = self.message.sender_id or self.message.chat_id
        if not _KEY_SAFE.fullmatch(sender):  # keys are printable ASCII; ids normally are
            sender = hashlib.sha256(sender.encode()).hexdigest()[:32]
        return f"chat:{self.message.channel}:{sender}:{conv_id}"


def too_long(text: str) -> bool:
    """Over the cap as sent, or once width-folded (NFKC can turn one character into many)."""
    return len(text) > MAX_TEXT_CHARS or len(clean_text(text)) > MAX_TEXT_CHARS


def clean_text(text: str) -> str:
    """Width-folded and trimmed; a leading '/' (as in '/help') is dropped."""
    return unicodedata.normalize("NFKC", text).strip().lstrip("/").strip()


@dataclass(frozen=True)
class Rule:
    kind: str  # "command" | "pattern" | "state" | "event"
    handler: Handler
    words: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    needs_actor: bool = True


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rules: list[Rule] = []
        self._fallback: Handler | None = None

    # --- registration ---------------------------------------------------------------

    def command(self, *words: str, needs_actor: bool = True) -> Callable[[Handler], Handler]:
        """`@router.command("查库存", "库存")`: the handler gets the text after the keyword."""

        def register(fn: Handler) -> Handler:
            self.rules.append(
                Rule("command", fn, words=tuple(w.lower() for w in words), needs_actor=needs_actor)
            )
            return fn

        return register

    def pattern(self, regex: str, *, needs_actor: bool = True) -> Callable[[Handler], Handler]:
        """`@router.pattern(r"(?P<q>.+)还有货吗")`: the handler gets the `re.Match`."""

        def register(fn: Handler) -> Handler:
            self.rules.append(Rule("pattern", fn, regex=re.compile(regex, re.I), needs_actor=needs_actor))
            return fn

        return register

    def state(self, *kinds: str) -> Callable[[Handler], Handler]:
        """`@router.state("order:")`: runs while the sender's state kind starts with one of
        `kinds`; gets the `State` and may return None to let the text route normally."""

        def register(fn: Handler) -> Handler:
            self.rules.append(Rule("state", fn, words=kinds))
            return fn

        return register

    def event(self, *names: str, needs_actor: bool = False) -> Callable[[Handler], Handler]:
        """`@router.event("subscribe")`: platform events by name (lower case); "*" = any."""

        def register(fn: Handler) -> Handler:
            self.rules.append(
                Rule("event", fn, words=tuple(n.lower() for n in names), needs_actor=needs_actor)
            )
            return fn

        return register

    def fallback(self, fn: Handler) -> Handler:
        self._fallback = fn
        return fn

    def include(self, *routers: Router) -> Router:
        for router in routers:
            self.rules.extend(router.rules)
            if router._fallback is not None:
                self._fallback = router._fallback
        return self

    # --- matching -------------------------------------------------------------------

    def is_command(self, text: str) -> bool:
        return self._match_command(clean_text(text)) is not None

    def recognises(self, text: str) -> bool:
        text = clean_text(text)
        if self._command_of(text) is not None:
            return True
        return any(r.kind == "pattern" and r.regex and r.regex.fullmatch(text) for r in self.rules)

    def _command_of(self, text: str) -> tuple[Rule, str] | None:
        """The command rule for `text`: as understood first ("有没有盘螺8的" is "查库存 盘螺8"),
        else as typed (a keyword the understanding layer leaves to the router)."""
        understood = understand(text).command
        found = self._match_command(understood) if understood else None
        return found or self._match_command(text)

    def _match_command(self, text: str) -> tuple[Rule, str] | None:
        lower = text.lower()
        best: tuple[Rule, str, int] | None = None
        for rule in self.rules:
            if rule.kind != "command":
                continue
            for word in rule.words:
                if lower.startswith(word) and (best is None or len(word) > best[2]):
                    rest = text[len(word) :].strip(" :：,，")
                    best = (rule, rest, len(word))
        return (best[0], best[1]) if best else None

    async def dispatch(self, ctx: ChatContext) -> Reply:
        ctx.router = self
        if too_long(ctx.message.text):
            return Reply(TOO_LONG_TEXT)
        for rule, arg in await self._candidates(ctx):
            if rule.needs_actor and ctx.actor is None:
                return Reply(BIND_HINT)
            result = await rule.handler(ctx, arg)
            if result is not None:
                return result if isinstance(result, Reply) else Reply(result)
        if self._fallback is None:
            return Reply(None)
        result = await self._fallback(ctx, ctx.text)
        return result if isinstance(result, Reply) else Reply(result)

    async def _candidates(self, ctx: ChatContext) -> list[tuple[Rule, Any]]:
        """Rules that match, in dispatch order; a state rule may still decline."""
        msg = ctx.message
        if msg.kind == "event":
            name = (msg.event or "").lower()
            return [
                (r, msg.event_key)
                for r in self.rules
                if r.kind == "event" and (name in r.words or "*" in r.words)
            ]
        text = ctx.text
        out: list[tuple[Rule, Any]] = []
        if not text:  # a picture, a file, speech without recognition: the fallback answers
            return out
        if ctx.state is not None and ctx.actor is not None:
            kind = ctx.state.kind
            out += [(r, ctx.state) for r in self.rules if r.kind == "state" and kind.startswith(r.words)]
        command = self._command_of(text)
        if command is not None:
            out.append(command)
        for rule in self.rules:
            if rule.kind == "pattern" and rule.regex is not None:
                match = rule.regex.fullmatch(text)
                if match:
                    out.append((rule, match))
        return out


def root_router() -> Router:
    """Every feature's router, composed: the only place that knows them all."""
    from bot.intents import base, commission, contracts, finance, leads, orders, review, stock

    return Router("root").include(
        base.router,
        stock.router,
        leads.router,
        orders.router,
        review.router,
        commission.router,
        finance.router,
        contracts.router,
    )
