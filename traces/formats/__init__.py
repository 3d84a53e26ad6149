"""Trace formats (schemas): one module per public LLM-serving trace format, each turning a
source frame into the native columns ``id, arrival_s, prompt_tokens, output_tokens``.
`registry` lists them all (`FORMATS`) and detects which one a file uses."""
