"""The headless Chromium of the browser tests and the UI benchmark (ENVIRONMENT.md: the Debian package, driven by
Playwright; never ``playwright install``)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
