"""pose-hg-train's workflow on experiment directories: new, continue, branch (``runs``), list,
show, diff (``views``), and what keeps a run safe from its first line (``guard``).
"""
from __future__ import annotations

from hgx.workflow.guard import EXIT_SIGNAL, Interrupted, RunResult, typed_options
from hgx.workflow.runs import branch, continue_, new, worker
from hgx.workflow.views import diff, list_experiments, show, summary

__all__ = ["EXIT_SIGNAL", "Interrupted", "RunResult", "branch", "continue_", "diff",
           "list_experiments", "new", "show", "summary", "typed_options", "worker"]
