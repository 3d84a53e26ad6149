"""Print the paper-a100 preset's per-iteration overhead derived from the paper's vanilla row
(see backends/presets.py for the derivation)."""

from backends.presets import derive_iteration_overhead, expected_max_prompt

if __name__ == "__main__":
    print(f"E[max prompt of 16] = {expected_max_prompt(16):.2f} tokens")
    print(f"HF_EAGER_A100_ITERATION_OVERHEAD_S = {derive_iteration_overhead():.6f}")
