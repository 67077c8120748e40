"""Token entropy from logits: exact, masked, temperature-scaled, memory-bounded.

H_t = -sum_v p(v) log p(v), p = softmax(logits_t / temperature), in nats, over the
full vocabulary (docs/method.md, "Token entropy"). With z = x - max(x), s = sum_v exp(z_v):

    H = log s + sum_v exp(z_v) (-z_v) / s

Both terms are non-negative, so nothing cancels (the textbook lse(x) - E[x] loses
~1e-4 relative precision on peaked rows), and s is accumulated in float64 so that
log(s) keeps its digits when one token dominates (s = 1 + tiny). Rows are processed
in cache-sized chunks whose temporaries (two float32 buffers reused by every chunk,
and the float64 copy the sum makes) stay within `chunk_bytes`: that is both the
memory bound and, on CPU, faster than streaming the whole tensor
(benchmarks/entropy.py).
"""

from __future__ import annotations

import numbers

import torch

DEFAULT_CHUNK_BYTES = 8 * 2**20
"""Default cap on the temporaries held at once (8 MiB: cache-sized chunks are fastest)."""

_FINITE_MIN = torch.finfo(torch.float32).min
_BYTES_PER_ELEMENT = 16  # float32 z and exp(z) buffers, plus the float64 copy the sum makes


def token_entropy(
    logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """Per-position entropy of the softmax over the last axis, in nats.

    Args:
        logits: (..., V) logits of any float dtype; bfloat16/float16 are upcast to
            float32 chunk by chunk. `-inf` entries (a masked vocabulary) are allowed;
            NaN and `+inf` are not.
        mask: optional (...) bool or 0/1 tensor, the leading shape of `logits`;
            positions where it is false get entropy 0 and are not computed.
        temperature: p = softmax(logits / temperature); must be > 0.
        chunk_bytes: the most bytes of temporaries held at once (16 per logit of a
            chunk; at least one row is always processed).

    Returns:
        (...) float32 tensor of entropies on the logits' device. A row whose logits
        are all `-inf` has entropy 0.
    """
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits: expected a torch.Tensor of shape (..., V), got {type(logits).__name__}")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits: expected a floating-point dtype, got {logits.dtype}")
    # numbers.Real admits numpy scalars (np.float32(0.7)); bool is an int but never a temperature.
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    temperature = float(temperature)
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes: expected a positive number of bytes, got {chunk_bytes}")
    lead_shape = logits.shape[:-1]
    vocab = logits.shape[-1]
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(mask)
        if tuple(mask.shape) != tuple(lead_shape):
            raise ValueError(
                f"mask: expected shape {tuple(lead_shape)} (the logits' shape without the vocabulary axis), "
                f"got {tuple(mask.shape)}"
            )
        mask = mask.to(device=logits.device, dtype=torch.bool).reshape(-1)

    flat = logits.reshape(-1, vocab)
    out = torch.zeros(flat.shape[0], dtype=torch.float32, device=logits.device)
    rows = max(1, min(flat.shape[0], chunk_bytes // (_BYTES_PER_ELEMENT * vocab)))
    # Two buffers reused by every chunk: no allocation (or page faults) per chunk.
    z_buf = torch.empty(rows, vocab, dtype=torch.float32, device=logits.device)
    e_buf = torch.empty_like(z_buf)
    with torch.no_grad():
        for start in range(0, flat.shape[0], rows):
            stop = min(start + rows, flat.shape[0])
            chunk = flat[start:stop]
            if mask is None or bool(mask[start:stop].all()):
                out[start:stop] = _chunk_entropy(chunk, temperature, z_buf, e_buf)
                continue
            keep = mask[start:stop].nonzero().squeeze(1)
            if len(keep):  # only the rows we need: padding costs nothing
                out[start + keep] = _chunk_entropy(chunk.index_select(0, keep), temperature, z_buf, e_buf)
    return out.reshape(lead_shape)


def _chunk_entropy(chunk: torch.Tensor, temperature: float, z_buf: torch.Tensor, e_buf: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of a (n, V) chunk as float32, using the given (>= n, V) buffers."""
    n = chunk.shape[0]
    z = z_buf[:n]
    z.copy_(chunk)  # the float32 upcast, into reused memory
    m = z.amax(dim=-1, keepdim=True)
    z.sub_(m)
    if temperature != 1.0:
        # After the shift: (x - max) / T keeps the gaps' digits (x / T - max(x / T) loses them at large x, small T),
        # and an overflow is only ever towards -inf, the exact limit (probability 0).
        z.div_(temperature)
    e = torch.exp(z, out=e_buf[:n])
    dot = torch.linalg.vecdot(e, z)  # sum_v exp(z_v) z_v <= 0
    all_masked = torch.isneginf(m.squeeze(-1))
    if bool(torch.isnan(dot).any()):
        # -inf logits (a masked vocabulary) give 0 * -inf = NaN: use a finite stand-in.
        # Rows that are all -inf have no distribution; NaN or +inf logits stay NaN.
        z.clamp_(min=_FINITE_MIN)
        dot = torch.linalg.vecdot(e, z)
        if bool((torch.isnan(dot) & ~all_masked).any()):
            raise ValueError(
                "logits: found NaN or +inf values; entropy is undefined there. "
                "Check the model's forward pass (e.g. fp16 overflow) or mask those positions out."
            )
    # float64 accumulation keeps log(s) exact when one token dominates (s = 1 + tiny).
    s = e.sum(dim=-1, dtype=torch.float64)
    h = (torch.log(s) - dot.double() / s).float()
    h = torch.where(all_masked, torch.zeros_like(h), h)
    # Rounding can leave a tiny negative value on a one-hot row.
    return h.clamp_(min=0.0)
