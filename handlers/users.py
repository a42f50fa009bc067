"""User administration use-cases (foundation part: the first admin)."""

from __future__ import annotations

from handlers.passwords import hash_password
from models.base import UserRole, UserStatus
from models.user import User


async def create_admin(username: str, password: str, display_name: str) -> bool:
    """Create an admin, or reset an existing one's password. Returns True when created."""
    if len(password) < 8:
        from core.errors import ValidationError

        raise ValidationError("password: 密码至少 8 个字符", {"field": "password"})
    user = await User.get_or_none(username=username)
    if user is None:
        await User.create(
            username=username,
            password_hash=hash_password(password),
            display_name=display_name,
            role=UserRole.ADMIN,
            status=UserStatus.ACTIVE,
        )
        return True
    user.password_hash = hash_password(password)
    user.role = UserRole.ADMIN
    user.status = UserStatus.ACTIVE
    await user.save()
    return False
