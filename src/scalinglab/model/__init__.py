"""scalinglab.model: the GPT built from ``scalinglab.arch.GPTConfig`` (dense/sparse attention, MoE)."""

from scalinglab.model.gpt import GPT, ModelOutput

__all__ = ["GPT", "ModelOutput"]
