"""admin_alerts routes (filled in by its feature)."""

from __future__ import annotations

from miniapp_api.framework import Api

api = Api()
