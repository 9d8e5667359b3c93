# Sourced by .ci/run, .ci/lock and .ci/drift: what the lock covers and how each makes a virtual environment.

LOCK_FILE=.ci/constraints.txt

# Every extra whose tests run on this machine kind. vllm is left out: it needs a CUDA GPU (its wheels pull
# CUDA torch and kernels) and cannot be installed or tested here, so nothing here could vouch for its pins.
LOCK_EXTRAS=dev,image,ray

# torch is the one pin that is a choice of build, not of version. This machine kind keeps the CPU build
# (2.13.0+cpu) as a local wheel that pip's config finds; an unlabelled `==2.13.0` matches it and, by PEP 440,
# sorts it above the plain release of the index, so pip takes it. Left free, pip would pick the index's newest
# torch: a multi-GB CUDA build whose metadata pulls nvidia-* packages. The drift check keeps this pin too.
TORCH_PIN="torch==2.13.0"

# new_venv DIR: a virtual environment with the pip that `python3 -m venv` bundles, on purpose not upgraded:
# it is the pip a fresh machine runs the README's set-up with (pip 23.2 on Python 3.11), and pips differ in
# what they install (pip < 23.3 does not match justext's lxml[html_clean] to lxml's html-clean extra).
new_venv() {
  python3 -m venv "$1"
  "$1/bin/python" -m pip --version
}
