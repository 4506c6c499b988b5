"""The paper's experiments (Jakobi et al. 2017), reproduced on phantoms with a known truth (docs/phantoms.md).

Every experiment runs on a :class:`Bench` -- a phantom's half maps and truth, the true model, the resolution,
one LocScale window, and two fixed masks:

* the **evaluation mask**: voxels within ``metrics.envelope_radius(d)`` of the true model's atoms; every
  truth score (``locscale.phantoms.truth.truth_scores``) and every in-mask kurtosis uses it, whatever the reference;
* the **scaling mask**: voxels within half a window of the true model's atoms (LocScale's default mask), the
  same for every reference so that only the reference changes between rows.

Experiments, one module each (each returns a pandas table; its ``plot_*`` draws it):

* :func:`.window_sweep.window_sweep` -- windows from 8 voxels to ~45 Å: in-mask kurtosis, FSC and CC to truth;
* :func:`.model_bias.model_bias_controls` -- references with one side chain truncated to Ala, one residue
  mutated to Trp, poly-Ala, and coordinates perturbed by 1-5 Å (RMS); map values at the affected side-chain
  atoms relative to the map made with the unmodified reference;
* :func:`.b_misestimation.b_misestimation` -- uniform reference B of 0, 50, 100, 200, 300 Å² against
  refined/true B;
* :func:`.model_completion.model_completion` -- a model with residues (or a chain) removed; per cycle the CC to
  truth of the LocScale map in the unmodelled region, by distance from the model. Between cycles an optional
  refinement (``refine`` callable) and a *surrogate model builder*: removed residues whose density in the
  current LocScale map correlates with the truth at ≥ ``build_cc`` are added back (a stand-in for a person
  rebuilding into the newly interpretable density; it uses the truth, which only a phantom has);
* :mod:`.truth_table` and :mod:`.local_resolution` -- the plots of the tables that :mod:`locscale.phantoms.truth` and
  :mod:`locscale.localres` compute.

:mod:`.bench` holds the bench (and the workflow's cycle-0 target), :mod:`.refine` the true model's B refined as
the workflow refines them, :mod:`.common` the TSV tables and the figure helper; the model edits of the controls
are in :mod:`locscale.phantoms.edits`.
"""
