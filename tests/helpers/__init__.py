"""Shared builders for the tests (imported as ``helpers.<module>``; ``pythonpath = ["tests"]``).

Test modules never import each other: what more than one of them needs lives here, or, for
fixtures, in a ``conftest.py``.

- ``helpers.engine``: tiny cohorts on digits for the engine tests.
- ``helpers.trust``: tiny study files, a tiny folder dataset, planted payloads.
- ``helpers.study``: the 36-run digits study of the executor, driver and command-line tests.
- ``helpers.cli``: running the command line and checking a one-line error.
- ``helpers.logits``: logits and hand computations for the maths tests.
- ``helpers.report``: run records for the report's tables and figures, finding a browser.
- ``helpers.advise``: stores of finished fixed-T KD runs for the advisor.
- ``helpers.fake_datasets``: tiny datasets in each real format, with the real class counts.
- ``helpers.shared``: files from ``../shared/data`` beside the checkout.
"""
