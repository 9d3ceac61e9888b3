"""The analysis half of the MOS layer: from the raters' results to MOS with intervals.

``wavebench mos import`` calls :func:`wavebench.mos.analysis.ratings.import_results`;
``wavebench mos analyze`` calls :func:`wavebench.mos.analysis.report.run_analysis`;
``wavebench mos plan`` calls :mod:`wavebench.mos.analysis.plan`. The other modules are their
steps, listed in :mod:`wavebench.mos`. Nothing here builds a packet.
"""
