"""Container health check: exit 0 when an HTTP endpoint of this container answers 2xx.

Usage: python healthcheck.py [URL]
Without URL it probes the chain worker's Prometheus endpoint,
http://127.0.0.1:${SHULIAN_METRICS_PORT:-9464}/metrics. Standard library only (the image has
no curl), a short timeout, nothing printed on success.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def default_url() -> str:
    port = os.environ.get("SHULIAN_METRICS_PORT") or "9464"
    return f"http://127.0.0.1:{port}/metrics"


def probe(url: str, *, timeout_s: float = 3.0) -> str | None:
    """None when ``url`` answers 2xx, otherwise why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    why = probe(argv[0] if argv else default_url())
    if why is not None:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
