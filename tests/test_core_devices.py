import json
from pathlib import Path

import pytest

from amk.core.devices import KNOWN_DEVICES, NAMED_DEVICES, Device, normalize_device_name, resolve_device
from amk.core.errors import ValidationError


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H200 NVL", "h200-nvl"),
        ("NVIDIA A100-PCIE-40GB", "a100"),
        ("NVIDIA A100-SXM4-40GB", "a100"),
        ("A100-SXM4-40GB", "a100"),
        ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("Tesla V100-PCIE-16GB", "v100-16gb"),
        ("Tesla V100-SXM2-32GB", "v100"),
        ("NVIDIA RTX A6000", "a6000"),
        ("NVIDIA GeForce RTX 5090", "rtx5090"),
        ("rtx5090", "rtx5090"),
        ("Tesla T4", "t4"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA A10G", "a10g"),
        ("h200", "h200"),
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD Instinct MI210", "mi210"),
        ("AMD Radeon RX 7900 XTX", "rx-7900-xtx"),
        ("AMD Radeon PRO W7800", "radeon-pro-w7800"),
        ("Intel(R) Data Center GPU Max 1550", "intel-max-1550"),
        ("Intel(R) Arc(TM) A770 Graphics", "intel-arc-a770"),
    ],
)
def test_device_strings_normalise_to_table_names(raw, name):
    assert normalize_device_name(raw) == name


@pytest.mark.parametrize(("raw", "name"), [
    ("NVIDIA A100 80GB PCIe MIG 1g.10gb", "a100-pcie-80gb-mig-1g.10gb"),
    ("NVIDIA A100-SXM4-40GB MIG 3g.20gb", "a100-mig-3g.20gb"),
    ("NVIDIA A100-SXM4-80GB MIG 1g.10gb+me", "a100-sxm4-80gb-mig-1g.10gb"),
    ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "h100-mig-1g.10gb"),
])
def test_a_mig_slice_is_named_by_its_parent_and_its_profile(raw, name):
    assert normalize_device_name(raw) == name


def test_a_mig_slice_has_its_share_of_the_parents_sms_bandwidth_and_memory():
    parent = resolve_device("NVIDIA A100-SXM4-80GB")
    for raw, sms, memory_slices, memory in (("MIG 1g.10gb", 14, 1, 10.0), ("MIG 3g.40gb", 42, 4, 40.0),
                                            ("MIG 7g.80gb", 98, 8, 80.0)):
        mig = resolve_device(f"NVIDIA A100-SXM4-80GB {raw}")
        assert (mig.sm_count, mig.memory_gb, mig.arch) == (sms, memory, parent.arch)
        assert mig.mem_bandwidth_gbps == pytest.approx(parent.mem_bandwidth_gbps * memory_slices / 8)


def test_variants_with_different_specs_are_different_devices():
    specs = {n: resolve_device(n) for n in ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB",
                                            "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL")}
    assert len({d.name for d in specs.values()}) == 6
    assert [specs[n].mem_bandwidth_gbps for n in ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe",
                                                  "NVIDIA A100-SXM4-80GB")] == [1555.0, 1935.0, 2039.0]
    assert specs["NVIDIA H100 PCIe"].sm_count == 114 and specs["NVIDIA H100 80GB HBM3"].sm_count == 132


def test_every_name_is_its_own_normal_form():
    names = list(KNOWN_DEVICES) + list(NAMED_DEVICES) + ["a100-pcie-80gb-mig-1g.10gb", "rtx-3090-ti"]
    assert [normalize_device_name(n) for n in names] == names


def test_the_names_amk_0_1_gave_resolve_to_the_specs_it_gave_them():
    """Stored records of amk 0.1 name a100, h100, ...: the same names keep the same specs."""
    from amk.core.migrations import _V1_DEVICES

    for name, (arch, sms, bandwidth, smem, memory) in _V1_DEVICES.items():
        assert resolve_device(name) == Device(name, arch, sms, bandwidth, smem, memory)


def test_the_registry_knows_the_required_gpus_with_their_specs():
    for name in ("h100", "h200", "a100", "l4", "l40s", "a10g", "t4", "rtx5090"):
        device = KNOWN_DEVICES[name]
        assert device.arch and device.sm_count and device.mem_bandwidth_gbps and device.smem_per_block_bytes


def test_the_device_table_says_where_its_numbers_come_from():
    table = json.loads((Path(__file__).resolve().parents[1] / "amk" / "core" / "devices.json").read_text())
    assert table["sources"] and set(table["devices"]) == set(KNOWN_DEVICES)


def test_an_unknown_device_resolves_to_a_tidy_name_with_unknown_specs():
    device = resolve_device("NVIDIA GeForce RTX 3090 Ti")
    assert device == Device("rtx-3090-ti")
    assert device.mem_bandwidth_gbps is None


@pytest.mark.parametrize(("raw", "why"), [
    ("", "non-empty"), ("   ", "non-empty"), ("NVIDIA", "names no device"),
    ("图形处理器", "no letter or digit"), ("x86_64", "CPU architecture"),
    ("AMD Instinct MI250X/MI250", "mi250x, mi250"), ("gfx90a:sramecc+:xnack-", "mi210, mi250, mi250x"),
    ("NVIDIA A100 80GB", "a100-pcie-80gb, a100-sxm4-80gb"),
])
def test_a_name_that_names_no_device_or_several_is_refused_saying_why(raw, why):
    with pytest.raises(ValidationError, match=why):
        normalize_device_name(raw)


def test_specs_must_be_positive():
    with pytest.raises(ValidationError, match="sm_count"):
        Device("x", sm_count=0)
