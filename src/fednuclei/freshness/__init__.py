"""``kedro run`` redoes only what is stale.

Every node gets a fingerprint: its definition, its code (:mod:`.code`), the values of the
parameters it reads and the signatures of its inputs (:mod:`.signatures`). After a node's outputs
are saved, the fingerprint and the outputs' signatures are recorded in the manifest
(:mod:`.manifest`); the runner (:mod:`.runner`) skips a node whose record still matches and runs
the rest with everything downstream of them (:mod:`.planning`). ``kedro run --all``
(:mod:`.command`) runs every node. How it decides, in words: ``docs/freshness.md``.
"""
