"""The base layer of wavebench: what every other package may import, and which imports none of them.

- :mod:`wavebench_base.errors`: the one error hierarchy and its exit codes;
- :mod:`wavebench_base.files`: atomic file writes, folders built aside and swapped in, locks;
- :mod:`wavebench_base.audio`: reading audio with validation, resampling, writing WAV, listing
  a folder's audio files by key;
- :mod:`wavebench_base.fingerprint`: the inputs and options of a run stored beside its outputs,
  so that reusing an output folder never mixes two jobs;
- :mod:`wavebench_base.runinfo`: provenance written into results (version, git revision, hashes).

Its name carries the project's prefix so that it cannot clash with another distribution's
top-level package in ``site-packages``.
"""
