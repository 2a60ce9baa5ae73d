"""The HTTPS ingest gateway (`mimamori gateway`): UTMs upload events and heartbeats here, each with
its own token; the gateway runs the worker's first-stage checks and answers only after Kafka
acknowledged every accepted record. A shell over `pipeline`, beside `agents`."""
