"""The base layer of wavebench: what every other package may import, and which imports none of them.

- :mod:`wavebench_base.errors`: the one error hierarchy and its exit codes;
- :mod:`wavebench_base.files`: atomic file writes, folders built aside and swapped in, locks;
- :mod:`wavebench_base.audio`: reading audio with validation, resampling, writing WAV.

Its name carries the project's prefix so that it cannot clash with another distribution's
top-level package in ``site-packages``.
"""
