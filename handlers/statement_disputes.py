"""Resolving a disputed statement (对账单异议处理): staff answer the subject's dispute.

`resolve_dispute(actor, id, note)`: a manager (its scope, as in `statements.get_statement`) or
an admin reopens a disputed statement as `open` with a note, so its subject can confirm it
again; the note and the dispute it answers are in the audit log (`statement.resolve`). When
the figures themselves were wrong, fix the data (payment, adjustment) and rerun the month:
the rebuild reissues a disputed statement as `open` on its own (`handlers.statements`)."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from core.errors import Forbidden, InvalidState, NotFound
from core.schema import MAX_ID
from handlers import statements
from handlers.actor import Actor
from handlers.audit import record
from handlers.commission import lock, statement_lock
from models.base import StatementStatus
from models.commission import Statement


async def resolve_dispute(actor: Actor, statement_id: int, note: str) -> statements.StatementOut:
    if not actor.is_staff:
        raise Forbidden("只有经理和管理员可以处理对账单异议")
    if not 0 < statement_id <= MAX_ID:
        raise NotFound("未找到该对账单")
    async with in_transaction():
        st = await (await statements._visible(actor)).get_or_none(id=statement_id)
        if st is None:
            raise NotFound("未找到该对账单")
        await lock(statement_lock(st.kind, st.subject_key, st.period))
        changed = await Statement.filter(id=st.id, status=StatementStatus.DISPUTED).update(
            status=StatementStatus.OPEN
        )
        if not changed:
            raise InvalidState("只有有异议的对账单可以处理", {"status": str(st.status)})
        await record(
            actor,
            "statement.resolve",
            "statement",
            st.id,
            {"status": "disputed", "dispute_reason": st.dispute_reason},
            {"status": "open", "note": note},
        )
    return await statements.get_statement(actor, statement_id)
