"""``dispatcher submit`` lives in ``dispatcher.fleet.submit``; this name is kept so that
existing imports (``from dispatcher.submit import submit``) go on working."""

from dispatcher.fleet.submit import (
    ledger_table,
    refuse_inline_secrets,
    refuse_schedule,
    submit,
    with_templates_inlined,
)

__all__ = ["ledger_table", "refuse_inline_secrets", "refuse_schedule", "submit",
           "with_templates_inlined"]  # fmt: skip
