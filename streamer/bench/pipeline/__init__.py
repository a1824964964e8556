"""``streamer bench pipeline``: the naive pipeline against this project's, Kafka in, Redis out.

Each module has one job; imports point one way, down this list (nothing here imports
upwards, and this file imports nothing, so importing one module loads only what it needs):

* ``run``: the entry the CLI calls, from the stack check to the finished results;
* ``fixed_loads``, ``ramp``: latency at fixed loads; the probe, ramp and bisection;
* ``profile``, ``bare``: where the time goes (a worker's CPU by py-spy, one step); the bare
  model stage (tokenize + infer alone, its own process) the worker is set against;
* ``turns``: the variants taking turns, one step at a time, with the others' CPU;
* ``hold``: one step: the load at a fixed rate, the backlog sampled, the drain awaited;
* ``processes``: a worker process's lifecycle, in its own namespace;
* ``preflight``, ``messages``, ``variants``, ``cpu``, ``errors``: the stack check and
  the pipelines' models; the demo messages; variant names; /proc CPU; the errors;
* ``report`` -> ``plots``: Markdown, the docs section and the files written; the PNGs;
* ``verdicts``: the sustainability rule, capacities, medians, the targets (pure);
* ``results``: the result models (results.json) and the targets' thresholds.

Vocabulary:

* **offered load**: messages per second the open-loop producer schedules (each record's
  timestamp is its intended send time, so a producer that falls behind shows up as
  latency, never as a lower load);
* **completed**: messages whose Redis update is done (ours: the per-partition
  ``consumed`` counters the aggregation script keeps; naive: the sum of its per-label
  counters); **backlog** = scheduled so far - completed;
* **sustainable**: over the second half of a step, the backlog does not keep growing
  (least-squares slope at most ``tolerance`` x the offered rate, and at least 1 msg/s;
  or the backlog stays under one second of offered load), and once the producer stops,
  it drains within ``grace_s``;
* **capacity**: the highest sustainable offered load of the ramp.
"""
