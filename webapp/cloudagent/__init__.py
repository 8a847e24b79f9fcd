"""Client for Ozonetel CloudAgent's Generate Token and Disposition APIs (no Flask here)."""

from .cache import DispositionCache
from .client import CloudAgentClient, DispositionList, make_session
from .outcomes import (
    ALREADY_DISPOSED,
    QUEUED,
    REJECTED,
    SAVED,
    UNAVAILABLE,
    Outcome,
)
from .tokens import SqliteTokenStore, Token, TokenStore

__all__ = [
    "ALREADY_DISPOSED",
    "QUEUED",
    "REJECTED",
    "SAVED",
    "UNAVAILABLE",
    "CloudAgentClient",
    "DispositionCache",
    "DispositionList",
    "Outcome",
    "SqliteTokenStore",
    "Token",
    "TokenStore",
    "make_session",
]
