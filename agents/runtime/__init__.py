"""The worker's framework: partitioned processors that own fetch, state, commit and fencing
(`processor`), the follower of the compacted topics (`follow`), the partitioner (`partitioning`)
and the Faust shell that starts services, runs timers and serves /metrics and /health (`shell`).
It knows nothing of UTMs, alerts or mails: the processors (`agents.processors`) plug into it."""
