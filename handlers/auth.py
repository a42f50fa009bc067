"""Bearer token -> Actor. (Foundation placeholder: every token is refused until accounts land.)"""

from __future__ import annotations

from core.errors import Unauthenticated
from handlers.actor import Actor


async def authenticate_token(token: str) -> Actor:
    raise Unauthenticated("invalid or expired token")
