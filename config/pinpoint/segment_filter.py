"""index.js's logic in Python, for running the campaign without Node.js or Lambda."""

OFFERS = {"gold": "20% off everything", "silver": "10% off shoes"}


def handler(event, context):
    kept = {}
    for endpoint_id, endpoint in event["Endpoints"].items():
        tier = ((endpoint.get("Attributes") or {}).get("Tier") or [None])[0]
        if tier not in OFFERS:
            continue
        endpoint["Attributes"]["Offer"] = [OFFERS[tier]]
        kept[endpoint_id] = endpoint
    return kept
