import pytest

from amk.core.devices import KNOWN_DEVICES, Device, normalize_device_name, resolve_device
from amk.core.errors import ValidationError


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100"),
        ("NVIDIA A100-PCIE-40GB", "a100"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA RTX A6000", "a6000"),
        ("NVIDIA GeForce RTX 5090", "rtx5090"),
        ("rtx5090", "rtx5090"),
        ("Tesla T4", "t4"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA A10G", "a10g"),
        ("h200", "h200"),
    ],
)
def test_device_strings_normalise_to_registry_names(raw, name):
    assert normalize_device_name(raw) == name


def test_the_registry_knows_the_required_gpus_with_their_specs():
    for name in ("h100", "h200", "a100", "l4", "l40s", "a10g", "t4", "rtx5090"):
        device = KNOWN_DEVICES[name]
        assert device.arch and device.sm_count and device.mem_bandwidth_gbps and device.smem_per_block_bytes


def test_h100_specs_are_the_public_ones():
    h100 = resolve_device("NVIDIA H100 80GB HBM3")
    assert (h100.arch, h100.sm_count, h100.mem_bandwidth_gbps, h100.compute_capability) == ("sm_90", 132, 3350.0, 90)


def test_an_unknown_device_resolves_to_a_tidy_name_with_unknown_specs():
    device = resolve_device("NVIDIA GeForce RTX 3090 Ti")
    assert device == Device("rtx-3090-ti")
    assert device.mem_bandwidth_gbps is None


@pytest.mark.parametrize("raw", ["", "   ", "NVIDIA"])
def test_a_name_that_names_no_device_is_refused(raw):
    with pytest.raises(ValidationError):
        normalize_device_name(raw)


def test_specs_must_be_positive():
    with pytest.raises(ValidationError, match="sm_count"):
        Device("x", sm_count=0)
