"""Built-in tool manifests. A package only so that an installed wheel ships the folder."""

from pathlib import Path

MANIFEST_DIR = Path(__file__).parent
