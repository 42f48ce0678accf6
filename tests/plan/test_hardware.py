"""Hardware table: lookups, aliases, unknown names, user extension, torch device-name matching."""

from __future__ import annotations

import pytest

from scalinglab.errors import PlanError
from scalinglab.plan.hardware import DTYPES, get_gpu, list_gpus, load_hardware, match_device_name

REQUIRED = {
    "a100-40gb",
    "a100-80gb",
    "h100-sxm",
    "h100-pcie",
    "h200",
    "b200",
    "mi300x",
    "tpu-v5e",
    "tpu-v5p",
    "cpu",
}


def test_table_has_required_entries_each_with_a_source():
    table = load_hardware()
    assert REQUIRED <= set(table)
    for spec in table.values():
        assert spec.source.strip(), spec.key
        assert spec.memory_bytes > 0 and spec.tdp_w > 0 and spec.bandwidth > 0
        assert set(spec.peak_flops) <= set(DTYPES) and "bf16" in spec.peak_flops


def test_dense_peaks_not_sparse():
    # H100 SXM dense bf16 is 989.4 TFLOP/s; the sparse figure (1,979) is how MFU > 100 % happens.
    assert get_gpu("h100").peak("bf16") == pytest.approx(989.4e12)
    assert get_gpu("A100").peak("bf16") == pytest.approx(312e12)
    assert get_gpu("h100").peak("fp8") == pytest.approx(2 * 989.4e12, rel=1e-3)


def test_aliases_case_insensitive():
    assert get_gpu("H100").key == "h100-sxm"
    assert get_gpu("a100_80gb").key == "a100-80gb"
    assert get_gpu("v5p").key == "tpu-v5p"


def test_unknown_gpu_lists_known():
    with pytest.raises(PlanError, match="known: .*h100-sxm"):
        get_gpu("h900")


def test_missing_dtype_is_plan_error():
    with pytest.raises(PlanError, match="fp8"):
        get_gpu("a100").peak("fp8")


@pytest.mark.parametrize(
    "torch_name,key",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA H200", "h200"),
        ("AMD Instinct MI300X", "mi300x"),
    ],
)
def test_match_device_name(torch_name, key):
    assert match_device_name(torch_name).key == key


def test_match_device_name_unknown_is_none():
    assert match_device_name("cpu") is None
    assert match_device_name("NVIDIA GeForce GTX 1080") is None


def test_user_file_adds_and_replaces(tmp_path):
    f = tmp_path / "hw.toml"
    f.write_text(
        '[gpu.my-chip]\nname = "Mine"\npeak_flops = { bf16 = 1e15 }\nmemory_bytes = 96e9\n'
        "bandwidth = 4e12\ntdp_w = 600\nintra_node_bw = 4e11\ninter_node_bw = 5e10\ngpus_per_node = 4\n"
        'source = "my lab measurement"\nmatch = ["MyChip"]\n'
        '[gpu.h100-sxm]\nname = "H100 derated"\npeak_flops = { bf16 = 8e14 }\nmemory_bytes = 80e9\n'
        "bandwidth = 3e12\ntdp_w = 700\nintra_node_bw = 9e11\ninter_node_bw = 5e10\ngpus_per_node = 8\n"
        'source = "derated"\n'
    )
    assert get_gpu("my-chip", f).peak("bf16") == 1e15
    assert get_gpu("h100-sxm", f).peak("bf16") == 8e14
    assert match_device_name("MyChip rev2", f).key == "my-chip"
    assert len(list_gpus(f)) == len(list_gpus()) + 1


def test_bad_user_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[gpu.x]\nname = "x"\n')
    with pytest.raises(PlanError, match="lacks"):
        load_hardware(f)
    with pytest.raises(PlanError, match="not found"):
        load_hardware(tmp_path / "nope.toml")
