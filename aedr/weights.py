"""Where a model's weights come from (a Hugging Face hub id or a local folder), whether they are
present locally, and the error a user sees when they cannot be had.

Resolution order for a model ``KEY``: the plugin's own argument (``source=``, ``folder=``), then the
environment variable ``AEDR_MODEL_<KEY>`` (upper case, every character that is not a letter or digit
replaced by ``_``: ``SD1.5`` -> ``AEDR_MODEL_SD1_5``), then the plugin's default. For
:class:`WeightSource` the value is either a hub id (``owner/name``, fetched and cached by
huggingface_hub, so ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and
``HF_TOKEN`` all apply) or a local folder in diffusers' layout: a whole pipeline folder holding the
autoencoder's subfolder, or the autoencoder folder itself. ``AEDR_IMAGES_<KEY>`` names a folder of
the model's own images to calibrate on (:func:`images_folder`).

Importing this module needs neither torch nor huggingface_hub; the hub is imported when it is asked.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

MODEL_ENV_PREFIX = "AEDR_MODEL_"
IMAGES_ENV_PREFIX = "AEDR_IMAGES_"

# The weight files of a diffusers model folder, any one of which makes it loadable.
WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.bin",
)

# What loading from a folder raises besides the hub's own errors (see :func:`hub_errors`).
LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)


@dataclass(frozen=True)
class Availability:
    """Whether a model's weights can be used here without a download, and why not."""

    local: bool
    detail: str = ""


class WeightsUnavailableError(OSError):
    """A model's weights are not here and cannot be fetched. Raised by ``load_autoencoder`` with a
    message naming what failed and how to provide it, so front ends can print it without a traceback."""


def _env_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def env_var_for(key: str) -> str:
    """``AEDR_MODEL_<KEY>``: ``SD1.5`` -> ``AEDR_MODEL_SD1_5``, ``taef2`` -> ``AEDR_MODEL_TAEF2``."""
    return MODEL_ENV_PREFIX + _env_key(key)


def images_env_var(key: str) -> str:
    """``AEDR_IMAGES_<KEY>``: a folder of the model's own images to calibrate on instead of generating."""
    return IMAGES_ENV_PREFIX + _env_key(key)


def configured(key: str, argument: str | os.PathLike | None = None) -> tuple[str, str] | None:
    """Where the weights of model ``key`` were configured to come from, as ``(value, origin)``:
    the plugin's ``argument`` (origin ``"argument"``), else ``AEDR_MODEL_<KEY>`` (``"environment"``);
    None when neither is set (blank values count as unset), so that the plugin's default applies."""
    if argument is not None and str(argument).strip():
        return str(argument), "argument"
    env = os.environ.get(env_var_for(key), "").strip()
    if env:
        return env, "environment"
    return None


def images_folder(key: str, argument: str | os.PathLike | None = None) -> Path | None:
    """The folder of model ``key``'s own images to calibrate on: ``argument``, else
    ``AEDR_IMAGES_<KEY>``, else None. Read when called, so environment changes apply."""
    folder = argument or os.environ.get(images_env_var(key), "").strip()
    return Path(folder).expanduser() if folder else None


def hub_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a load from the hub or a folder raises when the weights cannot be had: they
    become :class:`WeightsUnavailableError` (:meth:`WeightSource.loading`). Imports huggingface_hub."""
    from huggingface_hub.errors import HfHubHTTPError

    return LOAD_ERRORS + (HfHubHTTPError,)


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


# How long a connection to the hub may take before it counts as unreachable.
HUB_CONNECT_SECONDS = 3.0


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_reachable(timeout: float = HUB_CONNECT_SECONDS) -> bool:
    """Whether a TCP connection to the hub's endpoint (``HF_ENDPOINT``) opens within ``timeout``."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(hub_endpoint())
    try:
        with socket.create_connection((url.hostname or "", url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


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
    """The resolved origin of one model's weights in diffusers' format.

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
        found = configured(model, override)
        if found is not None:
            value, origin = found
            return cls(model, value, subfolder, origin, default_id, gated, former_ids)
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

    def location(self) -> tuple[str, str | None]:
        """What diffusers' ``from_pretrained`` is given: (hub id or folder, subfolder). A local folder
        without the expected ``config.json`` raises :class:`WeightsUnavailableError`."""
        if self.is_local:
            folder, subfolder = self.local_folder()
            return str(folder), subfolder
        return self.value, self.subfolder

    @contextmanager
    def loading(self, *, pipeline: bool = False) -> Iterator[None]:
        """Within the block, a failure to load from this source (missing files, the hub refusing or
        unreachable, offline mode) becomes :class:`WeightsUnavailableError` with :meth:`message`.
        Weights that are not here fail at once when the hub cannot be reached, before any download is
        tried: no retries to wait through (with ``HF_HUB_OFFLINE`` the hub's own lookup fails at once)."""
        if not self.is_local and not hub_offline() and not self.availability().local and not hub_reachable():
            from huggingface_hub.errors import LocalEntryNotFoundError

            raise self.error(LocalEntryNotFoundError(f"not in the local cache and {hub_endpoint()} cannot be reached"), pipeline=pipeline)
        try:
            yield
        except WeightsUnavailableError:
            raise
        except hub_errors() as exc:
            raise self.error(exc, pipeline=pipeline) from exc

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
