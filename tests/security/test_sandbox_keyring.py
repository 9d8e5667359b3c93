"""Issue #23, class 2: code in the python sandbox must not reach the caller's kernel keyrings.

The caller is a real process (a subprocess of the test, so that the keyrings it touches are its
own and not the test runner's, which other root processes on the machine may share): it joins a
fresh session keyring, puts a secret in it, then runs the attack through `run_python`, with the
bubblewrap jail and without it (the fallback where bwrap is missing). Afterwards it checks its own
keyring from outside the sandbox: the secret still there, nothing added. The attack code drives
the keyring system calls (`keyctl`, `add_key`, `request_key`) through ctypes and libc's
`syscall`, as an attacker would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "keyring-secret-5b9e03a1"
DESCRIPTION = "toolkit-planted"

if os.uname().machine not in ("x86_64", "aarch64"):
    pytest.skip("the attack code knows the keyring syscall numbers of x86_64 and aarch64", allow_module_level=True)

# What both the caller and the attack code use: raw keyring system calls.
KEYRING_CALLS = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, REQUEST_KEY, KEYCTL = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}[os.uname().machine]
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEYCTL_SEARCH, KEYCTL_READ = 1, 7, 10, 11
SESSION, USER = -3, -4

def read_key(serial):
    buf = ctypes.create_string_buffer(4096)
    n = libc.syscall(KEYCTL, KEYCTL_READ, ctypes.c_long(serial), buf, 4096)
    return buf.raw[:n].decode(errors="replace") if n >= 0 else "error %d" % ctypes.get_errno()

def search(keyring, description):
    return libc.syscall(KEYCTL, KEYCTL_SEARCH, keyring, b"user", description.encode(), 0)

def keyring_ids(keyring):
    buf = ctypes.create_string_buffer(4096)
    n = libc.syscall(KEYCTL, KEYCTL_READ, keyring, buf, 4096)
    return sorted(int.from_bytes(buf.raw[i:i + 4], "little") for i in range(0, max(n, 0), 4))
"""

CALLER = (
    KEYRING_CALLS
    + r"""
import asyncio, json, sys
from toolkit.tools.python.sandbox import SandboxLimits, run_python

attack, jailed, secret, description = sys.argv[1], sys.argv[2] == "jailed", sys.argv[3], sys.argv[4]
assert libc.syscall(KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) > 0, ctypes.get_errno()  # our own session keyring
payload = secret.encode()
serial = libc.syscall(ADD_KEY, b"user", description.encode(), payload, len(payload), SESSION)
assert serial > 0, ctypes.get_errno()
before = keyring_ids(SESSION)
limits = SandboxLimits(
    timeout_s=10, filesystem_isolation=jailed, require_filesystem_isolation=jailed, max_processes=32
)
result = asyncio.run(run_python(attack.replace("SERIAL", str(serial)), limits))
print(json.dumps({
    "stdout": result.stdout,
    "stderr": result.stderr,
    "filesystem_isolation": result.filesystem_isolation,
    "secret_after": read_key(serial),
    "keyring_before": before,
    "keyring_after": keyring_ids(SESSION),
}))
"""
)

READ_SESSION_KEY = KEYRING_CALLS + f"print('found', read_key(search(SESSION, {DESCRIPTION!r})))"
READ_BY_SERIAL = KEYRING_CALLS + "print('found', read_key(SERIAL))"
CLEAR_SESSION = KEYRING_CALLS + "print('clear', libc.syscall(KEYCTL, KEYCTL_CLEAR, SESSION), ctypes.get_errno())"
PLANT_KEY = KEYRING_CALLS + "print('added', libc.syscall(ADD_KEY, b'user', b'planted-by-sandbox', b'x', 1, SESSION))"
REQUEST_KEY_SEARCH = (
    KEYRING_CALLS
    + f"serial = libc.syscall(REQUEST_KEY, b'user', {DESCRIPTION.encode()!r}, None, 0)\n"
    + "print('found', read_key(serial))"
)

# keyctl(KEYCTL_CLEAR, SESSION) through the 32-bit ABI (`int 0x80`, i386 keyctl is 288) from
# 64-bit code: a filter that checks numbers without the ABI would let it through
CLEAR_THROUGH_INT80 = r"""
import ctypes, mmap
code = bytes([0x53, 0xB8, 0x20, 0x01, 0, 0, 0xBB, 7, 0, 0, 0, 0xB9, 0xFD, 0xFF, 0xFF, 0xFF, 0xCD, 0x80, 0x5B, 0xC3])
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
clear = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print("clear", clear())
"""

MODES = ["jailed", "without-bwrap"]


def attack(code: str, mode: str) -> dict:
    if mode == "jailed" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", CALLER, code, mode, SECRET, DESCRIPTION],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    expected = "bubblewrap" if mode == "jailed" else "none: disabled in settings"
    assert result["filesystem_isolation"] == expected, result
    return result


def assert_secret_not_read(result: dict) -> None:
    assert "found" in result["stdout"], result  # the attack ran to its end
    assert SECRET not in result["stdout"] + result["stderr"]


def assert_keyring_unchanged(result: dict) -> None:
    assert result["secret_after"] == SECRET
    assert result["keyring_after"] == result["keyring_before"]


@pytest.mark.parametrize("mode", MODES)
def test_read_a_secret_from_the_callers_session_keyring(mode):
    """The red team's case: look the key up by its description in the session keyring, read it."""
    assert_secret_not_read(attack(READ_SESSION_KEY, mode))


@pytest.mark.parametrize("mode", MODES)
def test_clear_the_callers_session_keyring(mode):
    """The red team's second case: wipe the caller's session keyring."""
    result = attack(CLEAR_SESSION, mode)
    assert "clear" in result["stdout"], result
    assert_keyring_unchanged(result)


@pytest.mark.parametrize("mode", MODES)
def test_read_the_key_by_its_serial_number(mode):
    """A variant: no search, the serial number alone (an attacker reads it from /proc/keys)."""
    assert_secret_not_read(attack(READ_BY_SERIAL, mode))


@pytest.mark.parametrize("mode", MODES)
def test_plant_a_key_in_the_callers_keyring(mode):
    """A variant: write into the caller's keyring (a key the caller may later trust)."""
    result = attack(PLANT_KEY, mode)
    assert "added" in result["stdout"], result
    assert_keyring_unchanged(result)


@pytest.mark.parametrize("mode", MODES)
def test_find_the_key_with_request_key(mode):
    """A variant: request_key searches every keyring the process has (and may run an upcall)."""
    assert_secret_not_read(attack(REQUEST_KEY_SEARCH, mode))


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the 32-bit ABI of x86_64")
@pytest.mark.parametrize("mode", MODES)
def test_clear_the_keyring_through_the_32_bit_abi(mode):
    """A variant: the same system call by its i386 number through `int 0x80`."""
    result = attack(CLEAR_THROUGH_INT80, mode)
    assert "clear" in result["stdout"], result
    assert_keyring_unchanged(result)
