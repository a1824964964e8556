"""Build model bundles: train, distil, export, optimise, quantize, verify and describe.

Import submodules directly; torch is imported inside the functions that need it.
"""
