"""The fleet ledger: one DynamoDB table shared by every worker of a run.

Same interface and answers as ``SqliteLedger`` (``dispatcher.ledger.base.Ledger``), plus
what a fleet needs: ``claim_lines`` (claims by line, group-committed: a fleet worker's
claim), ``shard_started`` / ``shard_done`` / ``shards`` (what ``dispatcher status``
shows per shard) and ``create_table``. The modules behind it, one concern each:
``ledger`` (the ``DynamoLedger`` facade), ``runs``, ``claims``, ``pages``, ``outcomes``,
``history``; ``_items`` (the item layout and what DynamoDB bills) and ``_table`` (calls,
retries, error mapping).
"""

from dispatcher.errors import DynamoLedgerError
from dispatcher.ledger.dynamodb.ledger import DynamoLedger, create_table_sync

__all__ = ["DynamoLedger", "DynamoLedgerError", "create_table_sync"]
