"""The steps of ``scripts/gpu-check.sh`` written in Python: ``python -m streamer.bench.gpu_check``.

The script installs, builds and runs the commands; these modules do what a shell does badly,
each writing one file of the results folder (imports point down this list):

* ``__main__``: the three subcommands the script calls, ``env``, ``e2e`` and ``summary``;
* ``environment``: the machine, the GPU (``nvidia-smi``, torch, onnxruntime) and the
  library versions -> ``environment.json``;
* ``e2e``: one worker on the running Kafka + Redis, a burst then a fixed load, through
  ``streamer bench pipeline``'s worker session and hold step -> ``e2e.json``;
* ``summary``: every figure of the run in one list, the GPU targets and the checks that
  the GPU rows ran on the GPU -> ``figures.json`` and ``summary.md``;
* ``results``: the files' models.
"""
