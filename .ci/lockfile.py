"""The lock (.ci/constraints.txt): write it from a pip resolution report, compare an environment with it.

    python .ci/lockfile.py write REPORT.json LOCK   # from `pip install --dry-run --report REPORT.json ...`
    python .ci/lockfile.py check LOCK               # this environment installed exactly the lock; exit 1 if not
    python .ci/lockfile.py diff LOCK                # what this environment installed that the lock does not pin

Standard library only: it runs in the throw-away environments of .ci/lock and .ci/drift and in CI's.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import sys
from pathlib import Path

HEADER = """\
# The lock: every package that `pip install -c .ci/constraints.txt -e '.[{extras}]'` installs, at the
# version CI tested. Resolved by pip {pip} on CPython {python}, {machine} Linux; regenerate with `bash .ci/lock`.
# A constraints file, not a requirements file: it fixes the version of whatever an install pulls in and
# adds nothing, so any smaller set of extras installs from it too (the README's `.[dev]`, `toolkit[browser]`).
# The vllm extra is not in it (no GPU on the machines that test it). torch is pinned without its local label
# (+cpu): the pin then matches the CPU wheel where pip's config finds one and prefers it to the index's build.
"""

# Installed by `python3 -m venv` itself, not by the install: checked only when the lock pins them.
BOOTSTRAP = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    """PEP 503's normalized name: `jusText` and `lxml_html_clean` as pip compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def public(version: str) -> str:
    """The version without its local label: `2.13.0+cpu` -> `2.13.0`."""
    return version.split("+", 1)[0]


def pins_of_report(report: dict) -> dict[str, str]:
    """name -> version for every package the resolution installs, the project itself (a local folder) left out."""
    pins = {}
    for item in report["install"]:
        if "dir_info" in item.get("download_info", {}):
            continue
        pins[canonical(item["metadata"]["name"])] = public(item["metadata"]["version"])
    return pins


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): public(d.version) for d in importlib.metadata.distributions()}


def differences(lock: dict[str, str], env: dict[str, str], project: str, resolved_only: bool = False) -> list[str]:
    """One line per package where this environment and the lock disagree. `resolved_only` leaves out what
    `python3 -m venv` installed (pip, setuptools): a fresh resolve keeps the venv's pip where it satisfies
    a requirement, while the lock's --ignore-installed resolution takes the newest."""
    lines = []
    for name in sorted(set(lock) | set(env)):
        if name == project or (name in BOOTSTRAP and (resolved_only or name not in lock)):
            continue
        have, pinned = env.get(name), lock.get(name)
        if have is None:
            lines.append(f"{name}: the lock pins {pinned}, not installed")
        elif pinned is None:
            lines.append(f"{name}: {have} installed, not in the lock")
        elif have != pinned:
            lines.append(f"{name}: {have} installed, the lock pins {pinned}")
    return lines


def write(report_path: Path, lock_path: Path, extras: str) -> None:
    report = json.loads(report_path.read_text())
    pins = pins_of_report(report)
    cuda = sorted(name for name in pins if name.startswith("nvidia-") or name == "triton")
    if cuda:
        sys.exit(
            f"lock: torch resolved to a CUDA build (it pulled {', '.join(cuda)}); resolve where pip finds the CPU wheel"
        )
    header = HEADER.format(
        extras=extras, pip=report["pip_version"], python=platform.python_version(), machine=platform.machine()
    )
    lock_path.write_text(header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    print(f"lock: {len(pins)} packages pinned in {lock_path}")


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "write":
        report, lock, extras = args
        write(Path(report), Path(lock), extras)
        return 0
    lock_path = Path(args[0])
    found = differences(read_lock(lock_path), installed(), project="toolkit", resolved_only=command == "diff")
    if command == "diff":
        print(f"drift: {len(found)} package(s) differ from {lock_path}" + (":" if found else ""))
        print("".join(f"  {line}\n" for line in found), end="")
        return 0
    if found:
        print(f"CI: this environment is not what {lock_path} pins:", file=sys.stderr)
        print("".join(f"  {line}\n" for line in found), end="", file=sys.stderr)
        print("CI: did pyproject.toml's dependencies change? Run `bash .ci/lock` and commit the lock", file=sys.stderr)
        return 1
    print(f"CI: the environment is exactly {lock_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
