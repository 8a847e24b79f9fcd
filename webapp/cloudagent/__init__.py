"""Client for Ozonetel CloudAgent's Generate Token, Disposition and Subscribe APIs (no Flask).

The names below are the library's public interface: the app imports nothing else from it
(tests/cloudagent/test_exported_members.py holds both sides to that).
"""

from .cache import LIST_RETRY_AFTER, DispositionCache, RedisDispositionCache
from .client import CloudAgentClient, DispositionList, make_session
from .outcomes import (
    ALREADY_DISPOSED,
    DISPOSITION_MAX,
    QUEUED,
    REJECTED,
    RESULT_UNKNOWN,
    SAVED,
    UNAVAILABLE,
    Outcome,
)
from .subscriptions import (
    SUBSCRIBE_PATH,
    SUBSCRIPTIONS_LIST_PATH,
    UNSUBSCRIBE_PATH,
    SubscriptionAnswer,
    SubscriptionsClient,
)
from .tokens import (
    MintBudgetExhausted,
    MintFailed,
    RedisTokenStore,
    SqliteTokenStore,
    StoreUnavailable,
    Token,
    TokenConflict,
    TokenStore,
    account_key,
)

__all__ = [
    "ALREADY_DISPOSED",
    "DISPOSITION_MAX",
    "LIST_RETRY_AFTER",
    "QUEUED",
    "REJECTED",
    "RESULT_UNKNOWN",
    "SAVED",
    "SUBSCRIBE_PATH",
    "SUBSCRIPTIONS_LIST_PATH",
    "UNAVAILABLE",
    "UNSUBSCRIBE_PATH",
    "CloudAgentClient",
    "DispositionCache",
    "DispositionList",
    "MintBudgetExhausted",
    "MintFailed",
    "Outcome",
    "RedisDispositionCache",
    "RedisTokenStore",
    "SqliteTokenStore",
    "StoreUnavailable",
    "SubscriptionAnswer",
    "SubscriptionsClient",
    "Token",
    "TokenConflict",
    "TokenStore",
    "account_key",
    "make_session",
]
