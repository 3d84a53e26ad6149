"""Print the paper-a100 preset's overhead derived from the paper's vanilla row (see
backends/presets.py for the derivation); both forms, the preset uses the per-token one."""

from seqsched.backends.presets import derive_overhead, expected_max_prompt

if __name__ == "__main__":
    print(f"E[max prompt of 16] = {expected_max_prompt(16):.2f} tokens")
    print(f"HF_EAGER_A100_TOKEN_OVERHEAD_S = {derive_overhead('token'):.11f}")
    print(f"(per-iteration form, the ablation: {derive_overhead('iteration'):.6f} s)")
