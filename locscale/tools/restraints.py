"""Restraints for refinement: the CCP4 monomer library (which one, and whether it knows a model's residues) and
ligand restraint dictionaries. Used by the refinement engines (``locscale.engines``) and the model validation."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LocScaleInputError


def is_monlib(path: str | os.PathLike) -> bool:
    """True when `path` looks like a CCP4 monomer library (has ``list/mon_lib_list.cif``)."""
    return (Path(path) / "list" / "mon_lib_list.cif").is_file()


#: where coot-headless-api (the ``workflow`` extra) ships its CCP4 monomer library
COOT_MONOMERS = ("share", "coot", "lib", "data", "monomers")


def installed_monlib() -> Path | None:
    """The CCP4 monomer library installed with coot-headless-api, or None. Found without importing the package
    (coot and cctbx in one process crash; and it is GPLv3, run only as its own process)."""
    import importlib.util

    spec = importlib.util.find_spec("coot_headless_api")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*COOT_MONOMERS)
        if is_monlib(path):
            return path.resolve()
    return None


NO_MONLIB_FIX = ("install the workflow extra (pip install -e '.[workflow]': coot-headless-api==1.3.3rc1 ships a "
                 "library of 113 dictionaries), set refine.monlib to a CCP4 monomer library folder or export "
                 "CLIBD_MON; or set refine.restrained: false to refine B-factors unrestrained")


def locate_monlib(configured: str | os.PathLike | None = None, environ: dict | None = None, *,
                  strict: bool = True) -> tuple[Path | None, str]:
    """(monomer library, where it came from: "configured", "$CLIBD_MON", "coot-headless-api" or "none found"), in
    that order of search. A configured path that is not a monomer library is always an error. `strict`: an
    unusable ``$CLIBD_MON`` is an error too (refinement); otherwise it is skipped (validation, which goes on
    without the tools that need a library)."""
    environ = os.environ if environ is None else environ
    if configured:
        path = Path(configured)
        if not is_monlib(path):
            raise LocScaleInputError("not a CCP4 monomer library (no list/mon_lib_list.cif inside)",
                                     "point refine.monlib at the monomer library folder (the one CLIBD_MON names in "
                                     "a CCP4 installation, e.g. $CCP4/lib/data/monomers), or set it to null to use "
                                     "$CLIBD_MON or the library installed with coot-headless-api", path)
        return path.resolve(), "configured"
    env = environ.get("CLIBD_MON")
    if env and is_monlib(env):
        return Path(env).resolve(), "$CLIBD_MON"
    if env and strict:
        raise LocScaleInputError("$CLIBD_MON is set but is not a CCP4 monomer library (no list/mon_lib_list.cif "
                                 "inside)", "fix or unset CLIBD_MON (unset: the library installed with "
                                 "coot-headless-api is used)", env)
    installed = installed_monlib()
    return (installed, "coot-headless-api") if installed else (None, "none found")


def resolve_monlib(configured: str | os.PathLike | None = None, environ: dict | None = None, *,
                   restrained: bool = True) -> Path | None:
    """The monomer library to restrain refinement with (:func:`locate_monlib`, strict): `configured` if given,
    else ``$CLIBD_MON`` if set, else the library installed with coot-headless-api; None when `restrained` is
    False.

    A configured path that is not a monomer library is an error; an unusable ``$CLIBD_MON`` is too, and so is
    finding no library at all while restrained refinement is asked for (it would silently change restrained into
    unrestrained refinement otherwise).
    """
    if not restrained:
        return None
    path, _ = locate_monlib(configured, environ, strict=True)
    if path is None:
        raise LocScaleInputError("restrained refinement (refine.restrained: true, the default) needs a CCP4 monomer "
                                 "library, and none was found (refine.monlib is null, $CLIBD_MON is unset and "
                                 "coot-headless-api is not installed)", NO_MONLIB_FIX)
    return path


def ligand_names(path: str | os.PathLike) -> set[str]:
    """Residue names a restraint dictionary (CIF) defines (its ``data_comp_XXX`` blocks)."""
    import gemmi

    try:
        doc = gemmi.cif.read(str(path))
    except (OSError, ValueError, RuntimeError) as err:
        raise LocScaleInputError(f"cannot read the restraint dictionary ({err})",
                                 "give a CIF restraint dictionary (e.g. from acedrg, grade or the CCP4 monomer "
                                 "library) in refine.ligands", path) from None
    names = {b.name[5:] for b in doc if b.name.startswith("comp_") and b.name != "comp_list"}
    if not names:
        raise LocScaleInputError("no restraint dictionary inside (no data_comp_XXX block)",
                                 "give a CIF restraint dictionary (e.g. from acedrg or grade) in refine.ligands", path)
    return names


def missing_monomers(model: str | os.PathLike, monlib: str | os.PathLike,
                     ligands: list | tuple = ()) -> list[str]:
    """Residue names of `model` that neither the monomer library nor the `ligands` dictionaries define (sorted)."""
    import gemmi

    from ..models import read_model

    structure = read_model(model)
    names = sorted({r.name for m in structure for ch in m for r in ch})
    known = set(gemmi.read_monomer_lib(str(monlib), names, ignore_missing=True).monomers.keys())
    for path in ligands:
        known |= ligand_names(path)
    return [n for n in names if n not in known]
