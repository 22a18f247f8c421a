"""The input layer: workflow and scenario files, and the run options, turned into the core's types.

Files are converted against declared specs (msgspec Structs: :mod:`.specs`, and the core's own fault,
profile, retry and reaction types), every problem reported at once (:mod:`.convert`); :mod:`.workflow`
and :mod:`.scenario` then fill in defaults and check what no single value shows. :mod:`.options` declares
each run option once (flag, scenario key, ``EMITTER_<NAME>`` variable, default).
"""
