"""What a person sees: a page opened in headless Chromium (Debian's ``chromium``, which
``make test`` installs) with no network at all, its DOM after the scripts ran, and a
screenshot kept under ``test-artifacts/screenshots/``."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile

from omni.config import REPO_ROOT

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",  # lets the page's own scripts finish
)


def _command(*args: str, offline: bool) -> list[str]:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("chromium is not installed: `make test` installs it (make browser)")
    # A network namespace of its own: no interface but a loopback that is down, so nothing
    # outside the page's files can load (where this may make one; elsewhere the flags above
    # must do).
    cut = ["unshare", "--net"] if offline and _can_unshare() else []
    return [*cut, chromium, *FLAGS, *args]


@functools.cache
def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


def open_offline(
    url: str, screenshot: str, size: tuple[int, int] = (1280, 1600), *, offline: bool = True
) -> str:
    """The DOM of ``url`` as Chromium renders it with no network (``offline=False``: only this
    machine's, for a server of its own); saves ``SCREENSHOTS/<screenshot>.png`` of the first
    ``size`` pixels."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="omni-chromium-") as profile:
        common = [f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]
        dom = subprocess.run(
            _command(*common, "--dump-dom", url, offline=offline),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        path = SCREENSHOTS / f"{screenshot}.png"
        path.unlink(missing_ok=True)
        subprocess.run(
            _command(*common, f"--screenshot={path}", url, offline=offline),
            capture_output=True,
            timeout=120,
            check=True,
        )
    if not path.exists() or path.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {url} to {path}")
    return dom
