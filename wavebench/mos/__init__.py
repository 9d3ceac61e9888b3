"""MOS listening tests: plan a test, build a blind offline packet, analyze the ratings.

The layer has two halves, a module both read packets through, and the commands::

    wavebench mos plan      -> analysis.plan       how wide the intervals will be, before recruiting
    wavebench mos packet    -> packet.build        the blind, balanced packet raters open offline
    wavebench mos validate  -> packet.validate     integrity, balance, leaks, the key commitment
    wavebench mos import    -> analysis.ratings    the page's results JSON into ratings.csv
    wavebench mos analyze   -> analysis.report     screening, MOS intervals, tests, the report
    wavebench mos serve     -> serve.app           the same page online, answers in SQLite
    wavebench mos status    -> serve.status        raters, votes per cell, screening so far
    wavebench mos import --db -> serve.db          the served study into the same ratings.csv

:mod:`wavebench.mos.packet` builds the test. Start at :mod:`~wavebench.mos.packet.build`:
``inputs`` finds and checks the clips, ``levels`` measures them (P.56, BS.1770, true peak) and
``level_alignment`` brings them to one rate and level; ``design`` assigns items and conditions
to sessions (Latin squares); ``stimuli`` renders every stimulus, with ``anchors`` and the
``quality_checks`` (gold, trap, headphone check); ``anonymize`` names them; ``page`` and
``page_script`` write the offline ``index.html``; ``exports`` and ``zipper`` write the rest.
``config`` reads ``--config mos.yaml``; ``validate`` checks a built packet.

:mod:`wavebench.mos.analysis` reads the ratings back. Start at
:mod:`~wavebench.mos.analysis.report`: ``ratings`` checks the key against its commitment and
imports the results into ``ratings.csv``; ``screening`` applies the pre-registered rater rules;
``tables`` computes system scores, pairwise tests and the per-item and per-rater tables from
``stats`` (t, CrowdMOS and bootstrap intervals, on :mod:`reports.bootstrap`); ``plots`` draws
them. ``plan`` sizes a test from the same variance model.

:mod:`wavebench.mos.packet_files` holds what both halves read of a packet: JSON bounded before
parsing, the JSON types of ``manifest.json`` and ``private/key.json``, sha256. Neither half
imports the other. :mod:`wavebench.mos.serve` runs a packet online and uses both halves: the
packet's page (with a served-mode script added) and the analysis's import and screening.
:mod:`wavebench.commands.mos` defines the commands and imports a half only when
one runs. ``FORMAT.md`` beside this file fixes the file formats between the halves; the
sections cited as "listening-test.md N" are those of ``docs/listening-test.md``, the spec.
"""
