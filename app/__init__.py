"""The application layer: run configuration, `simulate()`, and every `seqsched` command.

The top floor: it may import every package below it; nothing imports it."""
