"""What CloudAgent holds for a call after a save, as far as the widget knows it.

The host page hears it as `recordedDisposition` and `reason` (docs/embedding.md); the agent
sees it as the finished panel's summary. CloudAgent's "already disposed" names nothing, so
the only evidence is this agent's earlier save of the call in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..audit import UNKNOWN, Earlier
from ..cloudagent import ALREADY_DISPOSED, QUEUED, SAVED, Outcome

# The host's `reason`: a closed set, documented; None for every other outcome.
FIRST_SAVE = "saved"  # this save recorded the disposition
REPEAT = "repeat"  # the same as an earlier save that went through: nothing new recorded
EARLIER_SAVE = "earlier_save"  # already disposed, by this agent's earlier save
EARLIER_SAVE_UNCONFIRMED = "earlier_save_unconfirmed"  # ... whose answer was lost
OTHER = "other"  # already disposed, by something the widget did not see

FINISHED = (SAVED, ALREADY_DISPOSED)  # CloudAgent takes nothing more for the call


@dataclass(frozen=True)
class Summary:
    """The disposition CloudAgent holds and what went with it, for the finished panel."""

    disposition: str
    callback_time: str  # as sent to CloudAgent, YYYY-MM-DD HH:MM, or ""
    pause: bool
    pause_reason: str


@dataclass(frozen=True)
class Recorded:
    disposition: str | None  # recordedDisposition: None when the widget does not know it
    reason: str | None
    summary: Summary | None  # shown when the panel is finished and the widget knows what


def recorded(outcome: Outcome, earlier: Earlier | None, sent: Summary) -> Recorded:
    """What CloudAgent holds after `outcome`, given what this save sent and, for "already
    disposed", the agent's latest earlier save of the call that may have gone through."""
    if outcome.kind == SAVED:
        reason = REPEAT if outcome.reason == "saved_earlier" else FIRST_SAVE
        return Recorded(sent.disposition, reason, sent)
    if outcome.kind != ALREADY_DISPOSED:
        return Recorded(None, None, None)
    if earlier is None or earlier.outcome not in (SAVED, QUEUED, UNKNOWN):
        return Recorded(None, OTHER, None)
    if earlier.outcome == UNKNOWN:  # most likely, not known: the host is told no name
        return Recorded(None, EARLIER_SAVE_UNCONFIRMED, None)
    kept = Summary(earlier.disposition, earlier.callback_time, earlier.pause, earlier.pause_reason)
    return Recorded(earlier.disposition, EARLIER_SAVE, kept)
