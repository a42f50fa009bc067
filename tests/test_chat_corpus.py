"""Real phrasings of reps, distributors and managers (tests/data/chat_corpus.tsv: role, text,
intent, slots) through the understanding layer: each must give its intent and slots, and an
intent the router answers by command must name a command the bot has. Issue 18."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.router import root_router
from bot.understand import understand

CORPUS = Path(__file__).parent / "data" / "chat_corpus.tsv"
ROLES = {"any", "rep", "dist", "mgr"}
# Finished by the bot (items, quantity, product: with the conversation and the catalogue) or
# answered as unknown: no command.
NO_COMMAND = {"items", "quantity", "product", "unknown"}


def _rows() -> list[tuple[str, str, str, dict[str, str]]]:
    rows = []
    for n, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        role, text, intent, slots = line.split("\t")
        pairs = (p.split("=", 1) for p in slots.split(";") if p)
        rows.append((f"{n}:{role}", text.replace("\\n", "\n"), intent, dict(pairs)))
    return rows


ROWS = _rows()


def test_corpus_is_a_few_hundred_phrasings_for_every_role() -> None:
    assert len(ROWS) >= 300
    assert {row[0].split(":")[1] for row in ROWS} == ROLES


@pytest.mark.parametrize(("where", "text", "intent", "slots"), ROWS, ids=[r[0] for r in ROWS])
def test_phrasing_is_understood(where: str, text: str, intent: str, slots: dict[str, str]) -> None:
    understood = understand(text)
    assert (understood.intent, understood.slots) == (intent, slots), where
    if intent in NO_COMMAND:
        assert understood.command is None
    else:
        assert understood.command and _ROUTER._match_command(understood.command), understood


_ROUTER = root_router()
