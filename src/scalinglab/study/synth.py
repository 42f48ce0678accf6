"""Sample a synthetic corpus from a trained run (``scalinglab data synth RUN_DIR --tokens 1M --out synth/``).

It crosses steps (a trained run, the sampler of :mod:`scalinglab.model.generate`, the corpus writer of
:mod:`scalinglab.data.synth`), so it lives in study/. Every document starts from the end-of-text token (an
unconditional sample, as in the synthetic-data experiments of e.g. Shumailov et al. 2024) and ends at the
model's own end-of-text token or at its context length. torch is imported when a model is loaded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from scalinglab.data.prepare import check_destination
from scalinglab.data.synth import SynthConfig, write_synthetic_corpus
from scalinglab.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthResult:
    """What ``data synth`` wrote: the corpus folder, its document and token counts, and the seconds spent."""

    out: str
    n_documents: int
    n_tokens: int
    seconds: float
    manifest: dict


def sample_documents(model, tok, cfg: SynthConfig) -> list[list[int]]:
    """Documents (token ids, no end-of-text) sampled from ``model`` until they hold ``cfg.n_tokens`` tokens
    counting one end-of-text each; the last one is cut to fit exactly."""
    from scalinglab.model.generate import SamplingConfig, generate

    docs: list[list[int]] = []
    total, call = 0, 0
    while total < cfg.n_tokens:
        sampling = SamplingConfig(max_new_tokens=model.cfg.seq_len, temperature=cfg.temperature,
                                  top_k=cfg.top_k, top_p=cfg.top_p, seed=cfg.round_seed(call))
        done = generate(model, [[tok.eot_id]] * cfg.rows, sampling, tokenizer=tok)
        rows = [list(c.token_ids) for c in done if c.token_ids]
        if not rows:
            raise DataError(f"the model ended all {cfg.rows} samples of a call at once (end-of-text first); "
                            "raise --temperature or sample from a longer-trained run")
        for row in rows:
            if total >= cfg.n_tokens:
                break
            room = cfg.n_tokens - total - 1  # tokens left before this document's end-of-text (>= 0)
            docs.append(row[:room])  # one token left: an end-of-text-only document keeps the count exact
            total += len(docs[-1]) + 1
        call += 1
    return docs


def synthesize(run_dir: str | Path, out_dir: str | Path, cfg: SynthConfig, *,
               overwrite: bool = False) -> SynthResult:
    """Sample ``cfg.n_tokens`` tokens from ``run_dir``'s newest checkpoint into the corpus ``out_dir``."""
    import torch

    from scalinglab.study.taskeval import load_checkpoint_model
    from scalinglab.train.rundir import saved_config

    check_destination(out_dir, overwrite)  # before the sampling: a refused --out costs nothing
    t0 = time.perf_counter()
    model, tok, checkpoint = load_checkpoint_model(run_dir)
    run_cfg = saved_config(run_dir)
    with torch.no_grad():
        docs = sample_documents(model, tok, cfg)
    provenance = {"run": str(Path(run_dir).resolve()), "checkpoint": checkpoint.name,
                  "step": int(checkpoint.name.removeprefix("step_")),  # list_checkpoints' step_NNNNNNN
                  "run_fingerprint": run_cfg.fingerprint(), "model": model.cfg.to_dict()}
    manifest = write_synthetic_corpus(docs, tok, out_dir, cfg, provenance,
                                      tokenizer_dir=run_cfg.data_dirs[0] if run_cfg.data_dirs else None,
                                      overwrite=overwrite)
    seconds = time.perf_counter() - t0
    n_tokens = sum(s["n_tokens"] for s in manifest["splits"].values())
    log.info("sampled %d documents, %d tokens from %s in %.1f s", len(docs), n_tokens, checkpoint, seconds)
    return SynthResult(str(out_dir), len(docs), n_tokens, seconds, manifest)
