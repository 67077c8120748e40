import math

import numpy as np
import pytest
import torch
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from heal_hf import token_entropy


def reference_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    x = logits.double() / temperature
    logp = torch.log_softmax(x, -1)
    return torch.special.entr(logp.exp()).sum(-1)


finite = st.floats(-60, 60, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 70)), elements=finite),
       st.floats(0.2, 3.0))
def test_matches_float64_reference_within_1e5_relative(x, temperature):
    logits = torch.from_numpy(x)
    got = token_entropy(logits, temperature=temperature)
    want = reference_entropy(logits, temperature)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-7)


@settings(max_examples=150, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(2, 40)), elements=finite),
       arrays(np.bool_, st.tuples(st.integers(1, 5), st.integers(2, 40))))
def test_neg_inf_logits_never_nan(x, drop):
    drop = np.resize(drop, x.shape)
    logits = torch.from_numpy(x).masked_fill(torch.from_numpy(drop), float("-inf"))
    got = token_entropy(logits)
    assert not torch.isnan(got).any()
    want = reference_entropy(logits)
    fully_masked = torch.from_numpy(drop.all(-1))
    assert torch.all(got[fully_masked] == 0)
    assert torch.allclose(got[~fully_masked].double(), want[~fully_masked], rtol=1e-5, atol=1e-7)


def test_known_values():
    v = 1000
    uniform = torch.zeros(2, v)
    assert torch.allclose(token_entropy(uniform), torch.full((2,), np.log(v), dtype=torch.float32))
    one_hot = torch.full((1, v), -1e4)
    one_hot[0, 3] = 0
    assert token_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    # temperature -> large flattens towards uniform
    x = torch.randn(4, v) * 5
    assert (token_entropy(x, temperature=100.0) > token_entropy(x)).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_computed_in_float32(dtype):
    x = (torch.randn(3, 7, 500) * 4).to(dtype)
    got = token_entropy(x)
    assert got.dtype == torch.float32 and got.shape == (3, 7)
    assert torch.allclose(got.double(), reference_entropy(x.float()), rtol=1e-5, atol=1e-6)


def test_leading_shapes_and_mask():
    x = torch.randn(2, 3, 4, 50)
    mask = torch.rand(2, 3, 4) > 0.5
    got = token_entropy(x, mask=mask)
    assert got.shape == (2, 3, 4)
    assert torch.all(got[~mask] == 0)
    assert torch.allclose(got[mask].double(), reference_entropy(x)[mask], rtol=1e-5)
    assert torch.all(token_entropy(x, mask=torch.zeros(2, 3, 4, dtype=torch.bool)) == 0)


def test_masked_nan_positions_are_not_computed():
    x = torch.randn(2, 10)
    x[1, 4] = float("nan")
    got = token_entropy(x, mask=torch.tensor([True, False]))
    assert got[1] == 0 and torch.isfinite(got).all()


@pytest.mark.parametrize("chunk_bytes", [1, 100, 16 * 50 * 3, 10**9])
def test_chunking_does_not_change_results(chunk_bytes):
    x = torch.randn(17, 50) * 3
    assert torch.allclose(token_entropy(x, chunk_bytes=chunk_bytes), token_entropy(x), rtol=1e-6, atol=1e-7)


def test_one_row_chunks_match_default_chunks():
    x = torch.randn(64, 152064)
    small = token_entropy(x, chunk_bytes=1)  # one row at a time
    assert torch.allclose(small, token_entropy(x), rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([[0.0, float("nan")]]), "NaN"),
    (torch.tensor([[0.0, float("inf")]]), "inf"),
])
def test_nan_and_pos_inf_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        token_entropy(bad)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="mask"):
        token_entropy(torch.randn(2, 3, 5), mask=torch.ones(3, 2))
    with pytest.raises(ValueError, match="temperature"):
        token_entropy(torch.randn(2, 5), temperature=0)
    with pytest.raises(ValueError, match="logits"):
        token_entropy(torch.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="logits"):
        token_entropy(torch.zeros(3, 0))
    with pytest.raises(ValueError, match="logits"):
        token_entropy([[0.0, 1.0]])


def test_numpy_scalar_temperatures_equal_python_floats():
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(0))
    for t in (np.float32(0.7), np.float64(0.7), np.int64(2)):
        assert torch.equal(token_entropy(x, temperature=t), token_entropy(x, temperature=float(t)))
    assert torch.allclose(token_entropy(x, temperature=np.float32(0.7)), reference_entropy(x, float(np.float32(0.7))).float(),
                          rtol=1e-5)
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0, got True"):
        token_entropy(x, temperature=True)


def test_a_temperature_so_small_that_logits_over_it_overflow_gives_the_one_hot_limit():
    x = torch.tensor([[2.0, -1.0, 0.5]])
    assert token_entropy(x, temperature=1e-39).item() == 0.0  # (x - max) / T overflows to -inf only: the argmax
    assert token_entropy(x, temperature=1e-30).item() == 0.0
    ties = torch.tensor([[2.0, 2.0, -1.0]])  # two tied maxima stay a fair coin however small T is
    assert token_entropy(ties, temperature=1e-39).item() == pytest.approx(math.log(2), rel=1e-6)


def test_large_logits_at_a_low_temperature_keep_their_gaps():
    x = torch.tensor([[55.0, 56.0]])  # hypothesis found it: x / T - max(x / T) lost the gap's digits in float32
    assert torch.allclose(token_entropy(x, temperature=0.203125).double(), reference_entropy(x, 0.203125), rtol=1e-5)


def _malloc_in_use():
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None
    return lambda: libc.mallinfo2().uordblks + libc.mallinfo2().hblkhd


@pytest.mark.parametrize("chunk_mib", [2, 8])
def test_peak_extra_memory_stays_within_chunk_bytes(chunk_mib):
    import threading
    import time

    in_use = _malloc_in_use()
    require(in_use is not None, "needs glibc's mallinfo2 to count allocated bytes")
    x = (torch.randn(256, 152064) * 3).to(torch.bfloat16)
    token_entropy(x[:4], chunk_bytes=chunk_mib * 2**20)
    base, peak, done = in_use(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], in_use())
            time.sleep(0.0001)

    thread = threading.Thread(target=poll)
    thread.start()
    token_entropy(x, chunk_bytes=chunk_mib * 2**20)
    done.set()
    thread.join()
    extra_mib = (peak[0] - base) / 2**20
    # one row (152064 logits) is the granularity; 1 MiB slack for the outputs and bookkeeping
    assert extra_mib <= chunk_mib + 152064 * 16 / 2**20 + 1, extra_mib
