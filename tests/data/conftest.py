"""Small prepared corpora shared by the data tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    from scalinglab.data.prepare import prepare

    out = tmp_path_factory.mktemp("corpus") / "stdlib"
    prepare(["stdlib"], out, max_bytes=300_000)
    return out


def write_texts(folder, texts: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
