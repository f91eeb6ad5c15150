"""What a stage decides about each row, and the columns a rejected row carries: one definition for the
stages, the accounting, the reader's quarantine, the sensitivity replay and the published rejected files.

A stage returns every row with `_action` (keep, drop or quarantine), `_rule` and `_reason` (null when
kept). A rejected row is published with `stage`, `rule`, `reason` and `action` in front of its record.
"""

from __future__ import annotations

ACTION, RULE, REASON = "_action", "_rule", "_reason"
DECISION_COLUMNS = (ACTION, RULE, REASON)
KEEP, DROP, QUARANTINE = "keep", "drop", "quarantine"

# the columns in front of every rejected row, in this order
REJECTED_LEAD = ("stage", "rule", "reason", "action")
# a stage's decision columns as a rejected row names them
AS_REJECTED = {ACTION: "action", RULE: "rule", REASON: "reason"}
