"""The worker's application: one module per processor. Each wires its topics to the pure core
(`pipeline`) through a handler the runtime (`agents.runtime`) calls with batches of one partition."""
