"""The continuous-batching engine on arrays: the same simulation as `sim/replica.py` for the
configurations it covers, with the running set as structure-of-arrays and `Seq`-free edges."""
