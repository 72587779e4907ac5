"""Statistics for experiments and shadows: pure functions of counts, no I/O, standard library only.

The operator image carries no scipy (it would roughly double the operator's memory, see
``distributions``), so the few distribution functions needed are written with ``math`` and
``statistics.NormalDist`` and checked against scipy in the unit tests.

Modules:

* ``distributions``: normal quantiles, the chi-square tail for one degree of freedom, the exact
  binomial test, the Wilson interval;
* ``sequential``: always-valid comparisons of two arms (mixture SPRT, confidence sequences);
* ``srm``: the sample-ratio-mismatch check on assigned units;
* ``multiple``: Benjamini-Hochberg over several metrics;
* ``sample_size``: how many units per arm an experiment needs;
* ``agreement``: shadow comparisons (agreement rate, McNemar);
* ``decision``: what an experiment's figures mean (B wins, B loses, no winner, broken).
"""
