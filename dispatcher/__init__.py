"""segment-dispatcher: Amazon Pinpoint-style campaign sends with segment hooks."""
