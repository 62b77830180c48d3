"""swarmgym: Gymnasium environments of orchestration with tunable parallelism.

``import swarmgym`` registers the suite; then ``gymnasium.make("swarmgym/WideSearch-v0")``.
"""

from swarmgym.config import SubAgentReliability, SwarmConfig, TokenModel
from swarmgym.env import SwarmEnv
from swarmgym.families import (
    FAMILIES,
    DeepResearch,
    DependentChains,
    Fixed,
    LayeredDAG,
    Mixed,
    SerialReasoning,
    TaskGenerator,
    VerifiedPipeline,
    WideSearch,
)
from swarmgym.graph import KINDS, TaskGraph
from swarmgym.registration import flat_id, register_spec, register_suite
from swarmgym.simulator import Fates, SwarmSimulator, TaskInstance, draw_fates
from swarmgym.workflows import Workflows

__version__ = "0.2.0"

#: Every id registered by ``import swarmgym`` (Dict forms, each followed by its flat form).
SUITE_IDS: tuple[str, ...] = tuple(register_suite())

__all__ = [
    "FAMILIES",
    "KINDS",
    "SUITE_IDS",
    "DeepResearch",
    "DependentChains",
    "Fates",
    "Fixed",
    "LayeredDAG",
    "Mixed",
    "SerialReasoning",
    "SubAgentReliability",
    "SwarmConfig",
    "SwarmEnv",
    "SwarmSimulator",
    "TaskGenerator",
    "TaskGraph",
    "TaskInstance",
    "TokenModel",
    "VerifiedPipeline",
    "WideSearch",
    "Workflows",
    "draw_fates",
    "flat_id",
    "register_spec",
    "register_suite",
]
