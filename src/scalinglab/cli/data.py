"""CLI: ``scalinglab data prepare`` — tokenize a corpus once into memmap shards with a manifest.

Examples::

    scalinglab data prepare --out corpus/                      # the stdlib's own source (offline, default)
    scalinglab data prepare --out corpus/ --max-bytes 2MB       # quick demo / CPU tests
    scalinglab data prepare --source ~/texts --source notes.md --tokenizer bpe --bpe-vocab-size 8192 --out c/
    scalinglab data info corpus/ --json
    scalinglab data synth runs/small --tokens 1M --out synth/ --temperature 0.9 --seed 0
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console

data_app = typer.Typer(help="Prepare token shards from a corpus (stdlib source, text folders, cached HF "
                            "sets).",
                       no_args_is_help=True)


def _summary(manifest: dict, out: Path) -> dict:
    s = manifest["splits"]
    return {"out": str(out), "tokenizer": manifest["tokenizer"], "vocab_size": manifest["vocab_size"],
            "dtype": manifest["dtype"], "n_documents": manifest.get("n_documents"),
            "train_tokens": s["train"]["n_tokens"], "val_tokens": s["val"]["n_tokens"],
            "n_unique_tokens": manifest["n_unique_tokens"], "n_shards": len(s["train"]["shards"]) +
            len(s["val"]["shards"])}


def _show(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"prepared corpus {summary['out']}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key != "out":
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    stdout_console().print(table)


@data_app.command("prepare")
def prepare_cmd(
    out: Path = typer.Option(..., "--out", help="Destination folder (created; must be new or empty)."),
    source: list[str] | None = typer.Option(None, "--source", help="stdlib (default), a text file or folder, "
                                               "or hf:NAME[:SPLIT] (already cached). Repeatable."),
    tokenizer: str = typer.Option("byte", "--tokenizer", help="byte (256 + specials) or bpe (trained here)."),
    bpe_vocab_size: int = typer.Option(4096, "--bpe-vocab-size", help="Vocabulary size of the BPE."),
    max_bytes: str | None = typer.Option(None, "--max-bytes", help="Cap on text read, e.g. 2MB."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Fraction of documents held out."),
    seed: int = typer.Option(0, "--seed", help="Seed of the document-level split."),
    shard_tokens: str = typer.Option("16M", "--shard-tokens", help="Tokens per shard file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing prepared corpus."),
    dedup: bool = typer.Option(False, "--dedup", help="Drop exact and near duplicates (MinHash LSH)."),
    dedup_threshold: float = typer.Option(0.8, "--dedup-threshold", help="Jaccard of near duplicates."),
    dedup_ngram: int = typer.Option(5, "--dedup-ngram", help="Word n-gram shingle length."),
    dedup_num_perm: int = typer.Option(128, "--dedup-num-perm", help="MinHash permutations."),
    dedup_seed: int = typer.Option(1, "--dedup-seed", help="MinHash seed (same seed, same clusters)."),
    filter_: str | None = typer.Option(None, "--filter", help="Quality filters: 'gopher' (all rules) or "
                                       "comma-separated rule names."),
    filter_min_words: int = typer.Option(50, "--filter-min-words", help="word_count rule's minimum."),
    json_: bool = JSON_OPTION,
) -> None:
    """Tokenize once into uint16/uint32 memmap shards with manifest.json (counts, sha256, split)."""
    from scalinglab.data.dedup import DedupConfig
    from scalinglab.data.prepare import prepare
    from scalinglab.units import parse_bytes, parse_count

    dedup_cfg = DedupConfig(threshold=dedup_threshold, ngram=dedup_ngram, num_perm=dedup_num_perm,
                            seed=dedup_seed) if dedup else None
    filters = _filter_config(filter_, filter_min_words)
    cap = int(parse_bytes(max_bytes)) if max_bytes is not None else None
    manifest = prepare(source or ["stdlib"], out, tokenizer=tokenizer, max_bytes=cap,
                       val_fraction=val_fraction,
                       seed=seed, shard_tokens=int(parse_count(shard_tokens)), bpe_vocab_size=bpe_vocab_size,
                       overwrite=overwrite, dedup=dedup_cfg, filters=filters)
    info(f"prepared {out}")
    _curation_lines(manifest.get("data_card", {}).get("curation", {}))
    _show(_summary(manifest, out), json_)


@data_app.command("info")
def info_cmd(data_dir: Path = typer.Argument(..., help="A prepared corpus folder."),
             verify: bool = typer.Option(False, "--verify", help="Check every shard's sha256."),
             json_: bool = JSON_OPTION) -> None:
    """Show a prepared corpus's manifest (optionally verifying shard hashes)."""
    from scalinglab.data.loader import TokenSplit
    from scalinglab.data.prepare import read_manifest

    manifest = read_manifest(data_dir)
    if verify:
        for split in ("train", "val"):
            TokenSplit(data_dir, split, verify=True)
        info("all shards match their sha256")
    _show(_summary(manifest, data_dir), json_)


def _filter_config(spec: str | None, min_words: int):
    from scalinglab.data.filters import FilterConfig

    if spec is None:
        return None
    rules = None if spec.strip() == "gopher" else tuple(r.strip() for r in spec.split(",") if r.strip())
    return FilterConfig(rules=rules, min_words=min_words)


def _curation_lines(curation: dict) -> None:
    """What the filters and dedup removed, on stderr."""
    if "filters" in curation:
        removed = {r: n for r, n in curation["filters"]["removed_by_rule"].items() if n}
        info(f"filters kept {curation['filters']['n_kept']} of {curation['filters']['n_input']} documents"
             + (f"; removed {removed}" if removed else ""))
    if "dedup" in curation:
        d = curation["dedup"]
        info(f"dedup kept {d['n_kept']} of {d['n_input']}: {d['exact_duplicates']} exact and "
             f"{d['near_duplicates']} near duplicates; index {d['index_entries']} entries, "
             f"~{d['index_bytes'] / 2**20:.1f} MiB")


@data_app.command("card")
def card_cmd(data_dir: Path = typer.Argument(..., help="A prepared corpus folder."),
             json_: bool = JSON_OPTION) -> None:
    """The corpus's data card: documents, tokens, unique tokens, what dedup and filters removed, sources."""
    from scalinglab.data.card import read_card
    from scalinglab.data.prepare import read_manifest

    card = read_card(read_manifest(data_dir))
    if json_:
        print_json(card)
        return
    if "note" in card:
        info(f"[yellow]warning:[/yellow] {card['note']}")
    flat = {k: v for k, v in card.items() if not isinstance(v, dict) and k != "note"}
    _show({"out": str(data_dir), **flat}, False)
    _curation_lines(card.get("curation", {}))
    for src, row in card.get("sources", {}).items():
        stdout_console().print(f"source {src}: {row['documents']} documents, {row['tokens']:,} tokens "
                               f"({row['token_share']:.1%})")


@data_app.command("synth")
def synth_cmd(
    run_dir: Path = typer.Argument(..., help="A trained run folder (its newest checkpoint samples)."),
    out: Path = typer.Option(..., "--out", help="Destination corpus folder (created; must be new or empty)."),
    tokens: str = typer.Option(..., "--tokens", help="Tokens to sample (train + val), e.g. 1M."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    top_k: int | None = typer.Option(None, "--top-k", help="Sample among the k most likely tokens."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(0, "--seed", help="Same run, parameters and seed: the same corpus."),
    rows: int = typer.Option(64, "--rows", help="Documents sampled per batch."),
    val_fraction: float = typer.Option(0.05, "--val-fraction", help="Fraction of documents held out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing prepared corpus."),
    json_: bool = JSON_OPTION,
) -> None:
    """Sample a synthetic corpus from a trained run, with its provenance in the manifest; mix it with real
    data through a train config's ``mixture``."""
    from scalinglab.data.synth import SynthConfig
    from scalinglab.study.synth import synthesize
    from scalinglab.units import parse_count

    cfg = SynthConfig(n_tokens=int(parse_count(tokens)), temperature=temperature, top_k=top_k, top_p=top_p,
                      seed=seed, rows=rows, val_fraction=val_fraction)
    result = synthesize(run_dir, out, cfg, overwrite=overwrite)
    prov = result.manifest["synthetic"]
    info(f"sampled {result.n_documents} documents from {prov['checkpoint']} of {run_dir} in "
         f"{result.seconds:.1f} s")
    extra = {"checkpoint": prov["checkpoint"], "seconds": round(result.seconds, 2)}
    _show(_summary(result.manifest, out) | extra, json_)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.add_typer(data_app, name="data")
