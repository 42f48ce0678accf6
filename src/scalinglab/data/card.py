"""Curation (dedup, filters) before tokenizing, and the data card every prepared corpus carries.

The card (Gebru et al. 2021, "Datasheets for Datasets", in small) records what a scaling experiment needs to
know about its data: documents and tokens, unique tokens (U of Muennighoff et al. 2023, what epochs count
against), what deduplication and each filter rule removed, and each source's share of the tokens. It lives in
``manifest.json`` under ``data_card`` and is printed by ``scalinglab data card CORPUS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from scalinglab.data.dedup import DedupConfig, deduplicate
from scalinglab.data.filters import FilterConfig, apply_filters
from scalinglab.data.sources import Document, open_source
from scalinglab.errors import DataError


def tagged_documents(sources: Sequence[str], source_of: dict[str, str]) -> Iterator[Document]:
    """Documents of every source in order, recording each doc_id's source in ``source_of``."""
    for spec in sources:
        for doc in open_source(spec):
            source_of[doc.doc_id] = spec
            yield doc


def curate(docs: Iterable[Document], *, dedup: DedupConfig | None, filters: FilterConfig | None,
           sources: Sequence[str]) -> tuple[list[Document], dict]:
    """Filter, then deduplicate; returns the kept documents and the card's ``curation`` section.

    Raises DataError (before anything is written) when nothing survives, naming what each rule removed.
    """
    docs = list(docs)
    section: dict = {"n_input_documents": len(docs)}
    if filters is not None:
        res = apply_filters(docs, filters)
        section["filters"] = res.to_dict()
        if not res.kept:
            raise DataError(f"corpus {list(sources)} is empty after filtering ({res.summary()} of "
                            f"{res.n_input} documents); relax the thresholds or drop --filter")
        docs = list(res.kept)
    if dedup is not None:
        d = deduplicate(docs, dedup)
        section["dedup"] = d.to_dict()
        docs = list(d.kept)
    return docs, section


def build_card(manifest: dict, *, curation: dict | None = None,
               tokens_by_source: dict[str, int] | None = None,
               docs_by_source: dict[str, int] | None = None) -> dict:
    """The data card of a manifest (plus, when given, the curation section and per-source counts)."""
    s = manifest["splits"]
    n_tokens = s["train"]["n_tokens"] + s["val"]["n_tokens"]
    card = {"n_documents": manifest.get("n_documents"), "n_tokens": n_tokens,
            "n_train_tokens": s["train"]["n_tokens"], "n_val_tokens": s["val"]["n_tokens"],
            "n_unique_tokens": manifest.get("n_unique_tokens"),
            "n_distinct_token_ids": manifest.get("n_distinct_token_ids"),
            "tokenizer": manifest.get("tokenizer")}
    if curation is not None:
        card["curation"] = curation
    if tokens_by_source:
        total = sum(tokens_by_source.values()) or 1
        card["sources"] = {src: {"documents": (docs_by_source or {}).get(src, 0), "tokens": n,
                                 "token_share": n / total} for src, n in tokens_by_source.items()}
    return card


def read_card(manifest: dict) -> dict:
    """The manifest's data card; an older manifest without one gets the counts it does record."""
    return manifest.get("data_card") or {**build_card(manifest), "note": "prepared before data cards: no "
                                         "curation or per-source counts recorded"}
