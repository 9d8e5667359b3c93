"""How Chromium is launched: its flags, its own sandbox, and the user it runs as.

Chromium's sandbox (seccomp-bpf and, for the renderers that run pages' code, new user and PID
namespaces) is on wherever the kernel allows it:
- as root, Chromium refuses its sandbox, so the browser runs as an unprivileged user
  (`chromium_user`, default `nobody`), started through `as_user.py`;
- it needs unprivileged user namespaces (or Chromium's setuid `chrome-sandbox` helper, which
  Debian does not ship). Where the kernel denies them (`kernel.unprivileged_userns_clone=0`,
  Ubuntu's `kernel.apparmor_restrict_unprivileged_userns=1`, a container's default seccomp
  profile) Chromium reports "No usable sandbox": the launch then falls back to `--no-sandbox`
  with a warning, unless `chromium_sandbox: true` requires the sandbox (the launch fails
  instead). `chromium_sandbox: false` turns it off.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.tools.browser import as_user
from toolkit.tools.browser.settings import BrowserSettings

log = logging.getLogger(__name__)

# Chromium otherwise phones home (updates, sync, field trials) and, on a closed network, fills its
# log with refused connections; QUIC off keeps every request on TCP where the proxy sees it, and
# WebRTC may use no UDP but what a proxy carries (none: ours carries TCP), so that STUN, TURN and
# ICE checks can't reach an address around the proxy.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SANDBOX_FAILURE_MARKERS = ("Chromium sandboxing failed", "No usable sandbox", "crbug.com/638180")


@dataclass
class LaunchPlan:
    """One way to start Chromium: Playwright's `executable_path`, and whether its sandbox is on."""

    executable: str
    sandbox: bool
    user: str | None  # who the browser runs as, when toolkit is root
    wrapper_dir: Path | None = None  # ours to remove when the browser closes

    def cleanup(self) -> None:
        if self.wrapper_dir is not None:
            shutil.rmtree(self.wrapper_dir, ignore_errors=True)
            self.wrapper_dir = None


def _as_user_wrapper(chromium: str, user: str) -> tuple[str, Path]:
    """A two-line script Playwright can start in Chromium's place: as_user.py, then Chromium."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"browser setting chromium_user: no user {user!r} on this system") from None
    folder = Path(tempfile.mkdtemp(prefix="toolkit-chromium-"))
    script = folder / "chromium"
    command = [sys.executable, "-I", "-S", as_user.__file__, str(entry.pw_uid), str(entry.pw_gid), chromium]
    script.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(c) for c in command) + ' "$@"\n')
    script.chmod(0o700)
    return str(script), folder


def launch_plans(settings: BrowserSettings) -> list[LaunchPlan]:
    """The ways to try, in order: sandboxed first (unless turned off), then (unless required)
    without the sandbox."""
    user = settings.chromium_user if os.geteuid() == 0 and settings.chromium_user not in ("", "root") else None
    sandboxes = {None: [True, False], True: [True], False: [False]}[settings.chromium_sandbox]
    if os.geteuid() == 0 and user is None:
        sandboxes = [s for s in sandboxes if not s] or sandboxes  # root refuses it: don't try
    plans = []
    for sandbox in sandboxes:
        if user is not None:
            executable, folder = _as_user_wrapper(settings.chromium_path, user)
            plans.append(LaunchPlan(executable, sandbox, user, folder))
        else:
            plans.append(LaunchPlan(settings.chromium_path, sandbox, None))
    return plans


def is_sandbox_failure(exc: BaseException) -> bool:
    return any(marker in str(exc) for marker in SANDBOX_FAILURE_MARKERS)


def warn_unsandboxed(settings: BrowserSettings, exc: BaseException) -> None:
    log.warning(
        "Chromium's sandbox is not available here (%s); running Chromium with --no-sandbox. "
        "Set the browser setting chromium_sandbox: true to refuse instead.",
        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
    )
