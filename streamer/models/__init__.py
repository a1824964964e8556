"""Model bundles: train, distil, export, optimise, quantize, verify, describe and load.

Import submodules directly. The runtime path (``bundle``, ``manifest``, ``tokenize``,
``quick``) never imports torch; the training modules do, inside the functions that need it.
"""
