"""scalinglab.plan: from a compute, money or time budget to a complete, costed training plan (torch-free).

Public API: :func:`make_plan`, :class:`Plan`, :class:`Budget`, :func:`report_section`, and the building blocks
in ``hardware``, ``memory``, ``layout``, ``hyperparams``, ``cost``, ``inference`` and ``allocation``.
"""

from scalinglab.plan.hardware import GPUSpec, get_gpu, list_gpus, match_device_name
from scalinglab.plan.planner import Budget, Plan, make_plan
from scalinglab.plan.report import report_section

__all__ = [
    "Budget",
    "GPUSpec",
    "Plan",
    "get_gpu",
    "list_gpus",
    "make_plan",
    "match_device_name",
    "report_section",
]
