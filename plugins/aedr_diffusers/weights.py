"""Where a model's weights come from (a Hugging Face hub id or a local folder), whether they are
present locally, and the error a user sees when they cannot be had.

Resolution order for a model ``KEY``: the ``source=`` argument of the plugin, then the environment
variable ``AEDR_MODEL_<KEY>`` (upper case, every character that is not a letter or digit replaced by
``_``: ``SD1.5`` -> ``AEDR_MODEL_SD1_5``), then the default hub id. The value is either a hub id
(``owner/name``, fetched and cached by huggingface_hub, so ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN`` all apply) or a local folder: a whole pipeline
folder holding the autoencoder's subfolder, or the autoencoder folder itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from aedr import Availability
from aedr.models import WeightsUnavailableError

WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.bin",
)

__all__ = ["WeightSource", "WeightsUnavailableError", "env_var_for"]


def env_var_for(key: str) -> str:
    """``AEDR_MODEL_<KEY>``: ``SD1.5`` -> ``AEDR_MODEL_SD1_5``, ``taef2`` -> ``AEDR_MODEL_TAEF2``."""
    return "AEDR_MODEL_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def looks_like_path(value: str) -> bool:
    """A local path rather than a hub id: it exists, or it is written as a path (absolute, ``./``,
    ``~``, or with more than one ``/`` -- hub ids have exactly one)."""
    if Path(value).expanduser().exists():
        return True
    return value.startswith(("/", ".", "~")) or value.count("/") != 1 or "\\" in value


def cached_file(repo_id: str, filename: str) -> str | None:
    """The cached path of ``filename`` in ``repo_id`` (revision main), or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # an invalid repo id, an unreadable cache: simply not available
        return None
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class WeightSource:
    """The resolved origin of one model's autoencoder weights.

    ``value`` is a hub id or a local folder; ``origin`` says where it came from (``argument``,
    ``environment`` or ``default``) so that messages can tell the user what to change.
    """

    model: str
    value: str
    subfolder: str | None
    origin: str
    default_id: str
    gated: bool = False
    also_cached_as: tuple[str, ...] = ()

    @classmethod
    def resolve(
        cls,
        model: str,
        default_id: str,
        subfolder: str | None,
        *,
        override: str | os.PathLike | None = None,
        gated: bool = False,
        former_ids: tuple[str, ...] = (),
    ) -> "WeightSource":
        """Argument, then ``AEDR_MODEL_<KEY>``, then the default id. A former id of the model (e.g. SD1.5's
        original ``runwayml/...``) is used instead of the default only when it alone is in the cache."""
        env = os.environ.get(env_var_for(model), "").strip()
        if override is not None and str(override).strip():
            return cls(model, str(override), subfolder, "argument", default_id, gated, former_ids)
        if env:
            return cls(model, env, subfolder, "environment", default_id, gated, former_ids)
        source = cls(model, default_id, subfolder, "default", default_id, gated, former_ids)
        if not source.availability().local:
            for former in former_ids:
                alt = cls(model, former, subfolder, "default", default_id, gated, former_ids)
                if alt.availability().local:
                    return alt
        return source

    @property
    def env_var(self) -> str:
        return env_var_for(self.model)

    @property
    def is_local(self) -> bool:
        return looks_like_path(self.value)

    def local_folder(self) -> tuple[Path, str | None]:
        """(folder, subfolder) for a local source: the pipeline folder with its subfolder, or the
        autoencoder folder itself (``subfolder`` None)."""
        folder = Path(self.value).expanduser()
        if self.subfolder and (folder / self.subfolder / "config.json").is_file():
            return folder, self.subfolder
        if (folder / "config.json").is_file():
            return folder, None
        want = f"{folder / self.subfolder}/config.json or " if self.subfolder else ""
        raise WeightsUnavailableError(self.message(f"local folder {folder} has no {want}{folder}/config.json"))

    def availability(self) -> Availability:
        """Whether the weights can be loaded without a download (checks files only, no network)."""
        if self.is_local:
            folder = Path(self.value).expanduser()
            if not folder.is_dir():
                return Availability(False, f"folder {folder} does not exist ({self.origin})")
            try:
                base, sub = self.local_folder()
            except WeightsUnavailableError:
                return Availability(False, f"{folder} has no {self.subfolder or '.'}/config.json")
            root = base / sub if sub else base
            if any((root / w).is_file() for w in WEIGHT_FILES):
                return Availability(True, f"local folder {root}")
            return Availability(False, f"{root} has config.json but no weight file")
        prefix = f"{self.subfolder}/" if self.subfolder else ""
        if cached_file(self.value, prefix + "config.json") is None:
            hint = " (gated: needs a token)" if self.gated else ""
            return Availability(False, f"{self.value} not in the HF cache{hint}")
        if any(cached_file(self.value, prefix + w) for w in WEIGHT_FILES):
            return Availability(True, f"HF cache: {self.value}" + (f"/{self.subfolder}" if self.subfolder else ""))
        return Availability(False, f"{self.value}: config cached, weights not downloaded")

    def describe(self) -> str:
        sub = f", subfolder {self.subfolder!r}" if self.subfolder else ""
        return f"{self.value}{sub}"

    def how_to_provide(self, *, pipeline: bool = False) -> list[str]:
        """The ways a user can make the weights available, as lines for an error message."""
        repo = self.default_id if self.is_local else self.value
        include = "" if pipeline or not self.subfolder else f' --include "{self.subfolder}/*"'
        lines = []
        if self.gated:
            lines.append(
                f"{repo} is gated: accept its licence at https://huggingface.co/{repo} while logged in, then "
                "run `hf auth login` (or set HF_TOKEN=<your token>) on this machine."
            )
        lines += [
            f"Download once where the Hub is reachable: `hf download {repo}{include}` (fills the cache at "
            f"{hub_cache_dir()}; set HF_HOME or HF_HUB_CACHE to use another cache, HF_ENDPOINT for a hub mirror "
            "endpoint). Afterwards HF_HUB_OFFLINE=1 uses the cache without any network access.",
            f"Or point aedr at a local copy: {self.env_var}=/path/to/folder ("
            + ("the whole pipeline folder, with model_index.json" if pipeline else
               f"a pipeline folder with {self.subfolder}/, or that subfolder itself" if self.subfolder else
               "the folder with config.json and the weights")
            + "), e.g. made with "
            f"`hf download {repo}{include} --local-dir /path/to/folder`.",
            f"Or use a mirror repository holding the same files: {self.env_var}=<owner>/<name>.",
        ]
        return lines

    def message(self, problem: str, *, pipeline: bool = False) -> str:
        """The full user-facing text: what failed, from where, and every way to provide the weights."""
        what = "pipeline" if pipeline else "autoencoder"
        where = self.value if pipeline else self.describe()
        head = f"Cannot load the {what} of model {self.model!r} from {where} ({self._origin_text()}): {problem}."
        if not self.is_local and hub_offline():
            head += " HF_HUB_OFFLINE is set, so only the local cache was searched."
        steps = "\n".join(f"  - {line}" for line in self.how_to_provide(pipeline=pipeline))
        return f"{head}\nHow to provide the weights:\n{steps}"

    def _origin_text(self) -> str:
        return {
            "argument": "given as the source argument",
            "environment": f"from {self.env_var}",
            "default": f"the default; override with {self.env_var}",
        }.get(self.origin, self.origin)

    def error(self, exc: BaseException, *, pipeline: bool = False) -> WeightsUnavailableError:
        """Turn a loading failure into the user-facing error (root cause included)."""
        return WeightsUnavailableError(self.message(explain(exc, self), pipeline=pipeline))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def explain(exc: BaseException, source: WeightSource) -> str:
    """One line naming what went wrong, from the most specific exception in the chain."""
    from huggingface_hub import errors as hf

    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    root = chain[-1]
    detail = f"{type(root).__name__}: {str(root).splitlines()[0] if str(root) else ''}".rstrip(": ")
    if any(isinstance(e, hf.GatedRepoError) for e in chain) or "GatedRepoError" in names:
        return f"access to the gated repository was refused (no token, or licence not accepted) [{detail}]"
    if any(isinstance(e, hf.RepositoryNotFoundError) for e in chain):
        return f"no such repository on the Hub, or it is private [{detail}]"
    if any(isinstance(e, hf.LocalEntryNotFoundError) for e in chain) or "OfflineModeIsEnabled" in names:
        if hub_offline():
            return f"the files are not in the local cache [{detail}]"
        return f"the files are not in the local cache and the Hub could not be reached [{detail}]"
    if any(isinstance(e, (hf.EntryNotFoundError, hf.RemoteEntryNotFoundError)) for e in chain):
        return f"the repository has no such file [{detail}]"
    return detail
