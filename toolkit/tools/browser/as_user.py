"""Run Chromium as an unprivileged user: `python -I -S as_user.py UID GID CHROMIUM ARGS...`.

Playwright starts this (through a two-line shell script, chromium.py) in Chromium's place when
toolkit runs as root: Chromium refuses its own sandbox as root, and a browser process that is not
root is worth having anyway. It hands Playwright's fresh profile folder (`--user-data-dir`) to
the user, keeps a minimal environment (nothing of the caller's: no API keys), drops root for
good, then execs Chromium with the same arguments and file descriptors (Playwright talks to it
over fds 3 and 4). Standard library only: it runs with `-I -S`.
"""

import os
import sys

KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "FONTCONFIG_PATH", "FONTCONFIG_FILE")


def hand_over(folder, uid, gid):
    """Give `folder` and what is in it to uid:gid, without following links (it is Playwright's
    fresh profile folder: a few entries at most)."""
    os.lchown(folder, uid, gid)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def main():
    uid, gid, chromium, args = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    profile = next((a.split("=", 1)[1] for a in args if a.startswith("--user-data-dir=")), None)
    if profile:
        hand_over(profile, uid, gid)
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k.startswith("LC_")}
    env["HOME"] = profile or "/tmp"
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:  # never run the browser as root by mistake
        sys.exit("as_user: could not drop root")
    os.execve(chromium, [chromium] + args, env)


if __name__ == "__main__":
    main()
