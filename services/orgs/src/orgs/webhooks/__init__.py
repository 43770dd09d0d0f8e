"""Webhooks: signed deliveries of an org's events to the endpoints it registered.

```
ssrf.py      where a URL may point: resolved, refused when any address is private,
             loopback, link-local or reserved (unless allowed); the address checked is
             the one connected to (DNS rebinding)
signing.py   `whsec_` secrets and Standard Webhooks signatures (the `standardwebhooks` library)
worker.py    WebhookWorker: a consumer group on `events:orgs` turns each event into one
             message per matching endpoint (a row); a sender delivers them, in stream order
             per endpoint, at least once, with back-off and jitter, each attempt a row
```
"""
