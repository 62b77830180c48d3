"""The suite's env definitions: one TOML spec file per family.

Each file names an env id and the keyword arguments of :class:`swarmgym.SwarmEnv`
(generator, its parameters, the dynamics config). :func:`swarmgym.register_suite`
registers every file here when ``swarmgym`` is imported, each in two forms: the
Dict-observation id and its ``-flat`` twin. Installed, this folder is the
``swarmgym.envs`` package.
"""
