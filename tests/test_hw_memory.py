# amaranth: UnusedElaboratable=no
"""Memory mapping (block RAM / SPRAM per device, refusals with numbers), the SPRAM store and the flash
loader: the core with SPRAM synapses, loaded from a simulated SPI flash, against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from qlif.golden.spec.layouts import synapse_words
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run
from qlif.hw.flash import FlashLoader, weight_image
from qlif.hw.memory import MemoryFitError, device_memory, ebr_blocks, plan_memories, spram_blocks, spram_image
from qlif.hw.network import Network
from qlif.hw.spram import SpramStore
from qlif.sim.harness import simulate


def mnist(weight_bits: int, membrane_bits: int = 12):
    return random_model([784, 500, 10], timesteps=2, weight_bits=weight_bits, membrane_bits=membrane_bits)


def test_block_estimates():
    up5k, ecp5 = device_memory("iCE40UP5K"), device_memory("LFE5U-85F")
    assert device_memory("iCE40UP5K-SG48") is up5k and device_memory("unknown") is None
    assert ebr_blocks(16, 2048, up5k) == 8             # 256 x 16 blocks, 8 deep
    assert ebr_blocks(44, 32, up5k) == 3               # three 16-bit-wide blocks
    assert ebr_blocks(44, 3, up5k) == 0                # tiny: flip-flops
    assert ebr_blocks(128, 12544, ecp5) == 100         # 4 x 25 blocks of 512 x 36
    assert spram_blocks(32, 25088, up5k) == 4          # 2 wide, 2 deep


def test_digits_on_up5k_is_all_block_ram():
    plan = plan_memories(random_model([64, 128, 10], weight_bits=4), 4, "iCE40UP5K")
    assert plan.synapses == ("ebr", "ebr") and not plan.uses_spram
    assert plan.ebr_used <= plan.ebr_available == 27 and plan.spram_used == 0


def test_ternary_mnist_on_up5k_goes_to_spram():
    """784 x 500 x 2 bits = 784 kbit: only SPRAM (1 Mbit) holds layer 0; layer 1 stays in block RAM."""
    plan = plan_memories(mnist(2, 16), 8, "iCE40UP5K")
    assert plan.synapses == ("spram", "ebr")
    assert plan.spram_used == 4 and plan.ebr_used <= plan.ebr_available
    syn0 = next(m for m in plan.memories if m["name"] == "layer0.syn")
    assert (syn0["width"], syn0["depth"], syn0["kind"], syn0["blocks"]) == (16, 784 * 63, "spram", 4)
    assert plan.to_json()["spram"] == {"used": 4, "available": 4}


def test_refusals_name_the_numbers():
    with pytest.raises(MemoryFitError) as e:
        plan_memories(mnist(4), 16, "iCE40UP5K")
    msg = str(e.value)
    assert "does not fit the iCE40UP5K" in msg and "synapses need 1637632 bits" in msg
    assert "block RAM: " in msg and "27 available (110592 bits" in msg and "4 available (1048576 bits)" in msg
    with pytest.raises(MemoryFitError, match="LFE5U-25F.*no SPRAM on this device"):
        plan_memories(mnist(4), 32, "LFE5U-25F")
    # The 85F holds the 4-bit model in block RAM; the generic plan (simulation) has no limit.
    assert plan_memories(mnist(4), 32, "LFE5U-85F").synapses == ("ebr", "ebr")
    assert plan_memories(mnist(8), 64, None).ebr_available is None
    with pytest.raises(ValueError, match="has no SPRAM"):
        plan_memories(mnist(2), 8, "LFE5U-85F", spram=True)


def test_weight_image_layout():
    assert weight_image([[0xA34, 0x0FF]], [12]) == bytes([0x34, 0x0A, 0xFF, 0x00])
    assert weight_image([[1, 2], [0x30201]], [8, 18]) == bytes([1, 2, 1, 2, 3])
    with pytest.raises(ValueError, match="does not fit 4 bits"):
        weight_image([[16]], [4])
    model = random_model([5, 3], weight_bits=2)
    plan = plan_memories(model, 2, "iCE40UP5K", spram=True)
    assert spram_image(model, 2, plan) == bytes(synapse_words(model.layers[0], 2))


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="width must be"):
        SpramStore(width=0, depth=4)
    with pytest.raises(ValueError, match="targets must"):
        FlashLoader(targets=[])
    with pytest.raises(ValueError, match="offset must"):
        FlashLoader(targets=[(8, 4)], offset=1 << 24)
    model = random_model([5, 3])
    with pytest.raises(TypeError, match="memory must be a MemoryPlan"):
        Network(model=model, lanes=2, memory="spram")
    plan = plan_memories(model, 2, "iCE40UP5K", spram=True)
    assert "flash" in Network(model=model, lanes=2, memory=plan).signature.members
    assert "flash" not in Network(model=model, lanes=2).signature.members


@pytest.mark.parametrize("lanes, sizes, b", [(4, [12, 7, 5], 2), (2, [9, 20, 3], 8), (8, [6, 30], 1)])
def test_spram_core_loads_from_flash_and_matches(lanes, sizes, b):
    """Every synapse memory in SPRAM (widths of 8, 16 and 8 bits; several words per byte group), loaded
    from the simulated flash at start-up: spikes, membranes and cycles equal the reference."""
    model = random_model(sizes, timesteps=4, weight_bits=b, membrane_bits=8, seed=lanes)
    plan = plan_memories(model, lanes, "iCE40UP5K", spram=True)
    assert all(kind == "spram" for kind in plan.synapses)
    x = (np.random.default_rng(lanes).random((2, 4, sizes[0])) < 0.5).astype(np.uint8)
    gold = run(model, x, lanes=lanes)
    rtl = simulate(model, x, lanes=lanes, memory=plan)
    for l in range(len(model.layers)):
        np.testing.assert_array_equal(rtl.result.membranes[l], gold.membranes[l], err_msg=f"layer {l} v")
        np.testing.assert_array_equal(rtl.result.spikes[l], gold.spikes[l], err_msg=f"layer {l} s")
    np.testing.assert_array_equal(rtl.result.cycles, gold.cycles)
    assert gold.spikes[0].any() and gold.membranes[-1].any()     # both layers' weights matter
    # Loading took its 16 cycles per byte before the first sample could start.
    assert rtl.total_cycles > 16 * len(spram_image(model, lanes, plan))


def test_wrong_weights_in_flash_are_caught():
    """The loaded words really are the ones used: a corrupted image makes the comparison fail."""
    import qlif.sim.harness as sim_module

    model = random_model([12, 6], timesteps=3, weight_bits=4, membrane_bits=8, seed=9)
    plan = plan_memories(model, 2, "iCE40UP5K", spram=True)
    x = (np.random.default_rng(0).random((1, 3, 12)) < 0.6).astype(np.uint8)
    real = sim_module.spram_image

    def corrupted(*args):
        image = bytearray(real(*args))
        image[3] ^= 0x11
        return bytes(image)

    sim_module.spram_image = corrupted
    try:
        rtl = simulate(model, x, lanes=2, memory=plan)
    finally:
        sim_module.spram_image = real
    assert not np.array_equal(rtl.result.membranes[0], run(model, x, lanes=2).membranes[0])


@pytest.mark.parametrize("device, lanes, n_in, width", [("LFE5U-85F", 4, 600, 4), ("iCE40UP5K", 2, 150, 2)])
def test_sliced_block_ram_matches(device, lanes, n_in, width):
    """A deep synapse memory built from bit slices one block deep (4 x 4096 x 4 on the ECP5, 4 x 2048 x 2
    on the iCE40, as the device plans choose) computes the same."""
    model = random_model([n_in, 24, 6], timesteps=3, weight_bits=4, membrane_bits=8, seed=2)
    plan = plan_memories(model, lanes, device)
    assert plan.slices[0] == width
    x = (np.random.default_rng(1).random((2, 3, n_in)) < 0.2).astype(np.uint8)
    gold = run(model, x, lanes=lanes)
    rtl = simulate(model, x, lanes=lanes, memory=plan)
    for l in range(2):
        np.testing.assert_array_equal(rtl.result.membranes[l], gold.membranes[l], err_msg=f"layer {l} v")
    np.testing.assert_array_equal(rtl.result.cycles, gold.cycles)
