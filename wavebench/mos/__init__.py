"""MOS listening tests: blind, balanced packets (``mos packet``) and their validation."""
