"""Refinement engines for the workflow's refine step, as plug-ins.

An engine is one class following :class:`~locscale.engines.base.RefinementEngine` (its own module here) plus one
entry in :data:`ENGINES` (``register``). From the registry, :func:`make_engine` builds the engine that the
config's ``refine.engine`` names, the workflow's refine rule takes its conda environment and environment modules,
the workflow's start-up check calls its ``check_before_workflow``, and cross-validation asks it for its
half-map variant. The config schema's ``refine.engine`` enum and the cycle-row schema's ``engine`` enum list the
registered names (a test checks them against the registry).
"""

from __future__ import annotations

from ..errors import LocScaleInputError
from ..tools.process import run_logged
from .base import EngineUnavailableError, RefinementEngine, RefinementResult
from .phenix import PHENIX_HOWTO, PhenixEngine
from .servalcat import SERVALCAT_VERSION, ServalcatEngine, read_servalcat_stats

#: refine.engine value -> engine class (the default is the config schema's)
ENGINES: dict[str, type[RefinementEngine]] = {}


def register(cls: type[RefinementEngine]) -> type[RefinementEngine]:
    """Make `cls` selectable as ``refine.engine: <cls.name>`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, RefinementEngine)):
        raise TypeError(f"{cls!r} is not a RefinementEngine subclass")
    if cls.name in ENGINES and ENGINES[cls.name] is not cls:
        raise ValueError(f"a refinement engine named {cls.name!r} is already registered ({ENGINES[cls.name]!r})")
    ENGINES[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove the engine called `name` (tests)."""
    ENGINES.pop(name, None)


register(ServalcatEngine)
register(PhenixEngine)


def engine_class(name: str) -> type[RefinementEngine]:
    """The registered engine class called `name`; :class:`LocScaleInputError` if there is none."""
    try:
        return ENGINES[name]
    except KeyError:
        raise LocScaleInputError(f"unknown refinement engine {name!r}",
                                 f"set refine.engine to one of {tuple(ENGINES)}") from None


def make_engine(refine_config: dict, environ: dict | None = None) -> RefinementEngine:
    """The engine described by the workflow config's ``refine`` section (workflow/schemas/config.schema.yaml);
    settings it leaves out take the schema's defaults (the only place defaults live)."""
    from ..cycle.defaults import with_schema_defaults

    refine_config = with_schema_defaults("refine", refine_config)
    return engine_class(refine_config["engine"]).from_config(refine_config, environ)


__all__ = ["ENGINES", "PHENIX_HOWTO", "SERVALCAT_VERSION", "EngineUnavailableError",
           "PhenixEngine", "RefinementEngine", "RefinementResult", "ServalcatEngine", "engine_class", "make_engine",
           "read_servalcat_stats", "register", "run_logged", "unregister"]
