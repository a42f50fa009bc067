"""Errors raised by the channel layer (crypto, parsing, platform calls).

Webhooks map them once: `InvalidSignature` -> 401/403 and no work done, `InvalidPayload`
-> 400. They are not `core.errors.DomainError`s: they describe a bad request from (or to)
a platform, never a business rule.
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base of every error the channel layer raises on purpose."""

    code = "channel_error"


class InvalidSignature(ChannelError):
    """The request is not proven to come from the platform (bad or missing signature)."""

    code = "invalid_signature"


class StaleTimestamp(InvalidSignature):
    """The signature may be right but the timestamp is too far from now (replay guard)."""

    code = "stale_timestamp"


class Replayed(InvalidSignature):
    """The (timestamp, nonce) of a signed callback was already used by another message."""

    code = "replayed"


class InvalidPayload(ChannelError):
    """The body cannot be decrypted or parsed, or lacks a required field."""

    code = "invalid_payload"


class ReceiveIdMismatch(InvalidPayload):
    """The message decrypted but was sealed for another app / corp (receive_id)."""

    code = "receive_id_mismatch"
