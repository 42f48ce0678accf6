"""CLI: ``scalinglab export RUN_DIR --hf OUT`` — write a Hugging Face Llama checkpoint of a trained run.

Example::

    scalinglab export runs/llama-d4 --hf exports/llama-d4
    python -c "import transformers as t; t.LlamaForCausalLM.from_pretrained('exports/llama-d4')"

Only Llama shapes export (RMSNorm, RoPE, SwiGLU, no bias, dense attention, no experts); others exit 2.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.command("export")(export_cmd)


def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder (its newest checkpoint is exported)."),
    hf: Path = typer.Option(..., "--hf", help="Output folder of the Hugging Face Llama checkpoint."),
) -> None:
    """Write config.json, model.safetensors and tokenizer.json; prints the folder."""
    from scalinglab.data.tokenizers import BPE_FILE, EOT
    from scalinglab.model.hf_export import export_llama
    from scalinglab.study.taskeval import load_trained
    from scalinglab.train.rundir import saved_config

    model, tok = load_trained(run_dir)
    bpe = Path(saved_config(run_dir).data_dir) / BPE_FILE if tok.name == "bpe" else None
    typer.echo(str(export_llama(model, hf, eot=EOT, eot_id=tok.eot_id, bpe_json=bpe)))
