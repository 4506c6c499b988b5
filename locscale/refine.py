"""The workflow's refine step in one import: the refinement engines (``locscale.engines``: the protocol, the
registry and :func:`make_engine`, Servalcat and PHENIX) and the restraints they use (``locscale.restraints``: the
monomer library and ligand dictionaries). New code may import from those modules directly."""

from __future__ import annotations

from .engines import (
    DEFAULT_ENGINE,
    ENGINES,
    PHENIX_HOWTO,
    SERVALCAT_VERSION,
    EngineUnavailableError,
    PhenixEngine,
    RefinementEngine,
    RefinementResult,
    ServalcatEngine,
    engine_class,
    make_engine,
    read_servalcat_stats,
    register,
    run_logged,
    unregister,
)
from .engines.base import STEPS
from .restraints import (
    COOT_MONOMERS,
    NO_MONLIB_FIX,
    installed_monlib,
    is_monlib,
    ligand_names,
    missing_monomers,
    resolve_monlib,
)

__all__ = ["COOT_MONOMERS", "DEFAULT_ENGINE", "ENGINES", "NO_MONLIB_FIX", "PHENIX_HOWTO", "SERVALCAT_VERSION",
           "STEPS", "EngineUnavailableError", "PhenixEngine", "RefinementEngine", "RefinementResult",
           "ServalcatEngine", "engine_class", "installed_monlib", "is_monlib", "ligand_names", "make_engine",
           "missing_monomers", "read_servalcat_stats", "register", "resolve_monlib", "run_logged", "unregister"]
