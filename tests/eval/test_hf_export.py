"""HF export: transformers' LlamaForCausalLM loaded from the exported folder gives our logits (fp32); the byte
tokenizer.json encodes like ours; a non-Llama shape is refused with exit 2."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers", reason="the 'eval' extra (transformers) is not installed")

from scalinglab.arch import GPTConfig  # noqa: E402
from scalinglab.data.tokenizers import EOT, ByteTokenizer  # noqa: E402
from scalinglab.model import GPT  # noqa: E402
from scalinglab.model.hf_export import export_llama, llama_incompatibilities  # noqa: E402
from tests.conftest import exit2  # noqa: E402

torch.set_num_threads(1)
# The bound for fp32 (two implementations of the same ops may reduce in different orders).
LOGITS_ATOL = 1e-4


def llama_shaped(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=257, seq_len=32, d_model=64, n_layer=2, n_head=4, n_kv_head=2, mlp="swiglu",
                    mlp_hidden=160, rope_theta=500_000.0, **kw)
    model = GPT(cfg).eval()
    with torch.no_grad():  # norms away from 1 so a swapped norm weight would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("tied", [False, True])
def test_transformers_llama_gives_our_logits(tmp_path, tied):
    model = llama_shaped(tied_embeddings=tied)
    out = export_llama(model, tmp_path / "hf", eot=EOT, eot_id=256)
    hf = transformers.LlamaForCausalLM.from_pretrained(str(out), local_files_only=True,
                                                       dtype=torch.float32).eval()
    idx = torch.randint(0, 257, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(idx).logits, hf(input_ids=idx).logits
    assert float((ours - theirs).abs().max()) <= LOGITS_ATOL
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_byte_tokenizer_json_encodes_like_ours(tmp_path):
    export_llama(llama_shaped(), tmp_path, eot=EOT, eot_id=256)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    text = "123+456=579\n é<|endoftext|>"
    assert tok(text)["input_ids"] == [*ByteTokenizer().encode(text[:-13]).tolist(), 256]
    assert tok.decode(ByteTokenizer().encode("a b\tç").tolist()) == "a b\tç"


@pytest.mark.parametrize("kw", [dict(mlp="gelu"), dict(norm="layer"), dict(pos="learned"), dict(bias=True),
                                dict(n_experts=2)])
def test_non_llama_shapes_are_named(kw):
    cfg = GPTConfig(vocab_size=257, seq_len=32, d_model=64, n_layer=1, n_head=4, **{"mlp": "swiglu", **kw})
    assert len(llama_incompatibilities(cfg)) == 1


def test_cli_refuses_a_non_llama_run_with_exit_2(tmp_path, capsys):
    from scalinglab.train import TrainConfig, run

    cfg = TrainConfig(model=GPTConfig(vocab_size=257, seq_len=16, d_model=32, n_layer=1, n_head=2),
                      n_tokens=32, batch_size=2, eval_every=None)
    run(cfg, tmp_path / "run")
    line = exit2(["export", str(tmp_path / "run"), "--hf", str(tmp_path / "hf")], capsys)
    assert "not a Llama shape" in line and "mlp='gelu'" in line
    assert not (tmp_path / "hf" / "model.safetensors").exists()
