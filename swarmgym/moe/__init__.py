"""The compact Mixture-of-Experts orchestrator and its PPO trainer.

* :mod:`swarmgym.moe.model` -- :class:`OrchestratorNet`: a small transformer over node
  tokens plus a global token whose feed-forward blocks are MoE (top-k routed experts
  plus one shared expert) or, as the control, dense of equal *active* size.
* :mod:`swarmgym.moe.ppo` -- :class:`PPOConfig` and :func:`train`: PPO with PARL
  reward schedules, collecting from the batched engine.
* :mod:`swarmgym.moe.engines` -- :func:`make_engine` (the compiled batched kernel, or
  ``engine="gym"``: a synchronous Gymnasium vector env of the reference env), both
  :class:`swarmgym.engine_protocol.SwarmEngine`.
* :mod:`swarmgym.moe.policy` -- :func:`load_policy`: a checkpoint as an orchestrator.
* :mod:`swarmgym.moe.checkpointing` -- atomic file writes and :class:`GracefulStop`
  (SIGINT/SIGTERM as a stop request a run answers by saving).
* :mod:`swarmgym.moe.train` / :mod:`swarmgym.moe.study` -- ``swarmgym train`` and ``swarmgym study``.

Heavy imports (torch) happen when a submodule is imported, not here.
"""
