"""Example hook: a Python port of the CreditScore example from Pinpoint's documentation.

The same function runs in AWS Lambda (Python runtime), behind ``dispatcher lambda
serve``, or in process (``[functions.credit-score] python = "hooks.py:handler"``).
"""

import random


def handler(event, context):
    for endpoint_id, endpoint in event["Endpoints"].items():
        attr = endpoint.get("Attributes")
        if not attr:
            attr = endpoint["Attributes"] = {}
        # The original uses Math.random(); seeding by endpoint id keeps the demo repeatable.
        attr["CreditScore"] = [random.Random(endpoint_id).randint(650, 849)]
    return event["Endpoints"]
