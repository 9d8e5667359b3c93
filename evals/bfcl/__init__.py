"""BFCL (Berkeley Function Calling Leaderboard): data loading, a faithful AST checker, the eval run."""

from evals.bfcl.checker import Verdict, check, normalise_string
from evals.bfcl.data import CATEGORIES, DataNotFound, Question, find_data_dir, load_category, to_tool_specs

__all__ = [
    "CATEGORIES",
    "DataNotFound",
    "Question",
    "Verdict",
    "check",
    "find_data_dir",
    "load_category",
    "normalise_string",
    "to_tool_specs",
]
