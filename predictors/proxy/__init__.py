"""Proxy length model: a small pretrained text encoder (frozen) plus a trained head.

Features of one prompt:
- the encoder's mean-pooled sentence embedding of the *user text* (the Vicuna / Alpaca wrapper
  is boilerplate shared by every request, so it is stripped: faster, and nothing is lost);
- a bag of words (unigrams + bigrams, tf-idf weighted) over the instruction, vocabulary learned
  from the training set: task words ("essay", "list", "one word", "classify") are the strongest
  length signal and an `EmbeddingBag` learns them cheaply;
- a few scalars: log prompt tokens, log instruction / input word counts, whether there is an
  input.

A "wide and deep" head sees all three: the bag of words enters the MLP's hidden layer directly.
Head kinds:
- `regression`: log length, L1 loss (the conditional median, what MAE and Acc-k reward);
- `classification`: a softmax over `bucket`-token buckets (default 50), decoded to its median
  (`decode="median"`, what MAE rewards) or to the point that maximises the predicted chance of
  landing within 50 plus within 100 tokens (`decode="within"`, what Acc-50 / Acc-100 reward);
- `quantile`: pinball loss at `quantiles` (default p50, p90) on log length, monotone by
  construction; the point prediction is p50.
Every head also yields quantiles (regression: train residual quantiles; classification: its CDF).

Fine-tuning (`finetune_encoder=True`): the encoder's top `finetune_layers` layers (0 = all)
are trained with one head end to end (the word-embedding table frozen; with K > 0 the lower
layers' states are computed once per text and cached in memory, ~3x faster on a CPU); the
pooled embedding is then left un-normalised. One net, no ensemble (one encoder pass per prompt).

The model folder holds `config.json` (encoder reference, head, vocabulary, feature scaling,
training report) and `head.safetensors`, plus `encoder/` (weights + tokenizer) when the encoder
was fine-tuned. Embeddings of training data are cached by content
hash under `$SEQSCHED_CACHE` (default `~/.cache/seqsched/embeddings`).

torch / transformers are imported lazily: `import predictors.proxy` is cheap.

The package, by job: `features` (text views, encoder, embeddings, bag of words, scalars),
`model` (config, head module, loss, decoding), `training` (head training, fine-tuning),
`inference` (`ProxyModel`: predict / save / load; `ProxyPredictor`), `cost` (where the proxy
runs and what it costs there, modelled from the encoder's shape), `threads` (the torch thread
count of inference and training).
"""

from seqsched.predictors.proxy.features import (DEFAULT_ENCODER, Features, TextEncoder,
                                                Vocabulary, cache_dir, encode_cached, ngrams,
                                                resolve_encoder, scalar_features, split_prompt,
                                                trace_prompts, user_text, words)
from seqsched.predictors.proxy.inference import ProxyModel, ProxyPredictor
from seqsched.predictors.proxy.model import DECODES, FORMAT, HEADS, ProxyConfig, decode_within

__all__ = ["DECODES", "DEFAULT_ENCODER", "FORMAT", "Features", "HEADS", "ProxyConfig",
           "ProxyModel", "ProxyPredictor", "TextEncoder", "Vocabulary", "cache_dir",
           "decode_within", "encode_cached", "ngrams", "resolve_encoder", "scalar_features",
           "split_prompt", "trace_prompts", "user_text", "words"]
