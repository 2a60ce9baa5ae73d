"""The worker's framework: partitioned processors that own fetch, state, commit and fencing
(`processor`), the follower of the compacted topics (`follow`), the Faust shell that starts
services, runs timers and serves /metrics and /health (`shell`), and /health's reason codes
(`reasons`). It knows nothing of UTMs, alerts or mails: the processors (`agents.processors`) plug
into it."""
