"""Model backends behind one async protocol. `load_backend(model_string)` picks one."""

from toolkit.models.base import Backend, BackendError, Capabilities
from toolkit.models.factory import load_backend, parse_model_string

__all__ = ["Backend", "BackendError", "Capabilities", "load_backend", "parse_model_string"]
