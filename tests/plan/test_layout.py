"""Layout search: fitting layouts ranked by throughput, one-line diagnosis when nothing fits."""

from __future__ import annotations

import pytest

from scalinglab.arch import shape_for_params
from scalinglab.errors import PlanError
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.layout import LayoutRequest, ModelDims, enumerate_layouts, search_layouts


@pytest.fixture(scope="module")
def dims70b():
    return ModelDims.from_config(
        shape_for_params(70e9, vocab_size=128256, seq_len=4096, depths=range(1, 257))
    )


def _req(dims, n_gpus, batch=1024, **kw):
    return LayoutRequest(
        dims=dims, gpu=get_gpu("h100"), n_gpus=n_gpus, batch_sequences=batch, seq_len=4096, mfu=0.4, **kw
    )


def test_fitting_layouts_fit_and_are_ranked(dims70b):
    layouts = search_layouts(_req(dims70b, 1024, workspace_bytes=1e9, fragmentation=0.1))
    assert layouts
    for lay in layouts:
        assert lay.memory.total <= 80e9
        assert lay.dp * lay.tp * lay.pp == 1024
        assert 0 < lay.effective_mfu <= 0.4 + 1e-12
    mfus = [lay.effective_mfu for lay in layouts]
    assert mfus == sorted(mfus, reverse=True)
    assert len({(lay.dp, lay.tp, lay.pp, lay.zero) for lay in layouts}) == len(layouts)


def test_plain_ddp_of_70b_does_not_fit(dims70b):
    all_layouts = enumerate_layouts(_req(dims70b, 64))
    ddp = [lay for lay in all_layouts if lay.tp == 1 and lay.pp == 1 and lay.zero == 0]
    assert ddp and all(lay.memory.total > 80e9 for lay in ddp)


def test_no_fit_names_binding_constraint(dims70b):
    with pytest.raises(PlanError, match=r"no layout fits on 8x h100-sxm.*binding: model states"):
        search_layouts(_req(dims70b, 8))


def test_pipeline_bubble_and_recompute_cost_time(dims70b):
    layouts = enumerate_layouts(_req(dims70b, 64))
    by = {(lay.dp, lay.tp, lay.pp, lay.zero, lay.recompute, lay.micro_batch): lay for lay in layouts}
    none = by[(8, 8, 1, 1, "none", 1)]
    full = by[(8, 8, 1, 1, "full", 1)]
    assert full.step_time_s == pytest.approx(none.step_time_s * 4 / 3)
    assert full.memory.activations < none.memory.activations
    piped = by[(1, 8, 8, 0, "none", 1)]
    assert piped.effective_mfu < 0.4 and piped.comm_bytes_per_step["pipeline"] > 0


def test_zero3_moves_more_data_than_ddp(dims70b):
    layouts = enumerate_layouts(_req(dims70b, 64))
    def pick(z):
        return next(lay for lay in layouts if (lay.dp, lay.tp, lay.pp, lay.zero) == (8, 8, 1, z))
    assert pick(3).comm_bytes_per_step["data"] == pytest.approx(1.5 * pick(0).comm_bytes_per_step["data"])
    assert pick(3).memory.model_states < pick(1).memory.model_states < pick(0).memory.model_states


def test_batch_too_small_for_gpus(dims70b):
    with pytest.raises(PlanError):
        search_layouts(_req(dims70b, 4096, batch=1))


def test_expert_parallel_shards_experts():
    from scalinglab.arch import GPTConfig

    cfg = GPTConfig.from_depth(32, vocab_size=50304, seq_len=4096, n_experts=8, top_k=2)
    dims = ModelDims.from_config(cfg)
    assert dims.n_expert_params > 0.5 * dims.n_params
    layouts = enumerate_layouts(_req(dims, 64))
    by = {(lay.dp, lay.tp, lay.pp, lay.ep, lay.zero, lay.recompute, lay.micro_batch): lay for lay in layouts}
    no_ep, ep8 = by[(64, 1, 1, 1, 1, "none", 1)], by[(64, 1, 1, 8, 1, "none", 1)]
    dense = dims.n_params - dims.n_expert_params
    assert no_ep.memory.weights == pytest.approx(2 * dims.n_params)
    assert ep8.memory.weights == pytest.approx(2 * (dense + dims.n_expert_params / 8))
    assert ep8.comm_bytes_per_step["expert"] > 0 == no_ep.comm_bytes_per_step["expert"]


def test_mfu_losses_add_up_to_the_shortfall(dims70b):
    """Each cause's MFU points are its share of the step time × the asked MFU, so they sum to asked −
    estimated."""
    layouts = enumerate_layouts(_req(dims70b, 64))
    for lay in layouts:
        assert sum(lay.mfu_losses.values()) == pytest.approx(0.4 - lay.effective_mfu, abs=1e-12)
    full = next(lay for lay in layouts if lay.recompute == "full" and lay.pp == 1 and lay.dp == 8)
    assert full.mfu_losses["recompute"] == pytest.approx(0.4 * (1 / 3) / (4 / 3))  # +1/3 of a 4/3 step


def test_partial_recompute_fits_between_selective_and_full(dims70b):
    """Block recompute of k layers fits where selective does not, costs k/L of full recompute's +1/3."""
    req = _req(dims70b, 64, workspace_bytes=1e9, fragmentation=0.1)
    layouts = enumerate_layouts(req)
    partial = [lay for lay in layouts if lay.recompute == "partial"]
    assert partial
    by = {(lay.dp, lay.tp, lay.pp, lay.zero, lay.recompute, lay.micro_batch): lay for lay in layouts}
    for lay in partial:
        key = (lay.dp, lay.tp, lay.pp, lay.zero)
        sel, full = by[(*key, "selective", lay.micro_batch)], by[(*key, "full", lay.micro_batch)]
        assert full.memory.total <= lay.memory.total <= 80e9 < sel.memory.total
        assert full.step_time_s > lay.step_time_s > sel.step_time_s
        assert 0 < lay.recompute_layers < dims70b.n_layer / lay.pp + 1
        assert f"full on {lay.recompute_layers} layers" in lay.name
