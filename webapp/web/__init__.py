"""Web plumbing every response goes through, none of it specific to dispositions.

- headers.py: security headers (CSP with frame-ancestors, no referrer, no-store);
- compression.py: gzip for pages and fragments;
- assets.py: static files under content-hashed, immutable URLs, and their integrity hashes;
- logs.py: JSON log lines, one per request with its request id and annotations;
- before_send.py: the work a GET leaves to the asgi bridge's loop (its gzip, its log line);
- errors.py: small error pages, or outcome fragments for htmx; never a stack trace;
- health.py: `/healthz` and `/readyz`.
"""
