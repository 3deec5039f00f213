"""Run ledgers: SQLite in the output directory by default, DynamoDB for a worker fleet."""

from dispatcher.ledger.base import Claim, Ledger, LineSet, RunInfo, SendClaim
from dispatcher.ledger.sqlite import SqliteLedger

LEDGER_FILE = "ledger.sqlite"

__all__ = ["LEDGER_FILE", "Claim", "Ledger", "LineSet", "RunInfo", "SendClaim", "SqliteLedger"]
