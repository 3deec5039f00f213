"""Campaign semantics applied per endpoint: A/B treatments and holdout, quiet time,
MaximumDuration, and the Daily / Total caps.

Each rule is a small value object built once per run from the settings and asked once
per endpoint, so everything here is cheap on the hot path (millions of endpoints).

    treatments  A/B treatments and the holdout: stable buckets, messages per treatment
    quiet       quiet time in each endpoint's time zone
    limits      MaximumDuration (Expiry) and the Daily / Total caps
"""

from dispatcher.campaign.limits import DAILY_WINDOW, Expiry, cap_check, cap_status
from dispatcher.campaign.quiet import QuietTime
from dispatcher.campaign.treatments import (
    BUCKETS,
    MAX_ADDITIONAL_TREATMENTS,
    Treatment,
    Treatments,
    bucket,
)

__all__ = [
    "BUCKETS",
    "DAILY_WINDOW",
    "MAX_ADDITIONAL_TREATMENTS",
    "Expiry",
    "QuietTime",
    "Treatment",
    "Treatments",
    "bucket",
    "cap_check",
    "cap_status",
]
