"""The worker: a Faust app whose agents run ``streamer``'s scoring loop and alerting."""
