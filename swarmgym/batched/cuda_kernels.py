"""The batched kernel compiled for CUDA: one thread per env, the stages of :mod:`swarmgym.batched.kernel`.

Imported only when a CUDA kernel is first needed (``device="cuda"``, or ``kernel="cuda"`` under
numba's CUDA simulator, which needs ``numba.cuda`` as a global of this module). Each kernel takes
the arguments of its CPU counterpart in :mod:`swarmgym.batched.kernel`.
"""

from __future__ import annotations

from numba import cuda

from swarmgym.batched.kernel import encode, encode_adjacency, encode_extended, random_valid_action, start_env, step_env


@cuda.jit
def step_batch(actions, s, k, r, out, bank, write_final):
    """Env ``e`` takes action ``actions[e]`` (see :func:`~swarmgym.batched.kernel.step_env`)."""
    e = cuda.grid(1)
    if e < actions.shape[0]:
        step_env(s, k, r, out, bank, e, actions[e], write_final)


@cuda.jit
def start_batch(env_ids, rows, s, k, r, out, bank):
    """Env ``env_ids[j]`` starts on bank row ``rows[j]`` (see :func:`~swarmgym.batched.kernel.start_env`)."""
    j = cuda.grid(1)
    if j < env_ids.shape[0]:
        start_env(s, k, r, out, bank, env_ids[j], rows[j])


@cuda.jit
def encode_batch(s, k, r, out):
    """Re-encode env ``e``'s observation and mask (and a progressive episode's adjacency) from its state."""
    e = cuda.grid(1)
    if e < s.env.shape[0]:
        encode(s, k, r, e, out.nodes, out.globals_, out.mask)
        if r.extended:
            encode_extended(s, k, r, e, out.nodes, out.globals_, out.mask)
        if r.progressive and r.with_adjacency:
            encode_adjacency(s, k, e, out.adjacency)


@cuda.jit
def random_actions(mask, key, draw, actions):
    """``actions[e]``: a uniform draw among env ``e``'s valid actions."""
    e = cuda.grid(1)
    if e < mask.shape[0]:
        actions[e] = random_valid_action(mask, e, key, draw)
