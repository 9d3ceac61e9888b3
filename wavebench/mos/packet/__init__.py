"""The packet half of the MOS layer: build a blind, balanced, level-aligned listening test.

``wavebench mos packet`` calls :func:`wavebench.mos.packet.build.build_packet`;
``wavebench mos validate`` calls :func:`wavebench.mos.packet.validate.validate_packet`. The
other modules are their steps, listed in :mod:`wavebench.mos`. Nothing here reads ratings.
"""
