"""Where the zoo's weights live and how their integrity is checked.

Layout (diffusers folders, loaded with ``from_pretrained``)::

    weights/
      checksums.sha256            sha256 of every file below, as ``sha256sum`` writes it
      <model>/autoencoder/        config.json + diffusion_pytorch_model.safetensors
      <model>/unet/               config.json + diffusion_pytorch_model.safetensors
      <model>/scheduler/          scheduler_config.json
      <model>/zoo.json            latent normalisation, documented PSNR, parameters, training time

``AEDR_ZOO_WEIGHTS=DIR`` points the zoo at weights trained elsewhere (``aedr zoo train --out DIR``)
instead of the ones shipped in the package (:func:`weights_in_use`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aedr.models import WeightsUnavailableError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKSUM_FILE = "checksums.sha256"
DISTANCES_FILE = "sample_distances.json"  # per model folder: gate 3's MMD² to every other zoo model's samples
ENV_WEIGHTS = "AEDR_ZOO_WEIGHTS"


def weights_in_use() -> Path:
    """The weights folder in use: ``$AEDR_ZOO_WEIGHTS`` or the shipped one."""
    env = os.environ.get(ENV_WEIGHTS, "").strip()
    return Path(env) if env else WEIGHTS_DIR


class ChecksumError(WeightsUnavailableError):
    """A shipped weight file is missing or differs from the checksum file. A
    :class:`~aedr.models.WeightsUnavailableError`, so front ends print its message, not a traceback."""


def model_dir(name: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    return Path(weights_dir) / name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_files(weights_dir: Path) -> list[Path]:
    return sorted(p for p in Path(weights_dir).glob("*/**/*") if p.is_file() and p.name != CHECKSUM_FILE)


def write_checksums(weights_dir: Path = WEIGHTS_DIR) -> Path:
    """(Re)write the checksum file for every file inside the model folders."""
    weights_dir = Path(weights_dir)
    lines = [f"{sha256_file(p)}  {p.relative_to(weights_dir).as_posix()}" for p in _model_files(weights_dir)]
    target = weights_dir / CHECKSUM_FILE
    target.write_text("\n".join(lines) + "\n")
    return target


def read_checksums(weights_dir: Path = WEIGHTS_DIR) -> dict[str, str]:
    path = Path(weights_dir) / CHECKSUM_FILE
    if not path.is_file():
        raise ChecksumError(f"{path}: checksum file missing; the zoo weights cannot be verified (reinstall aedr)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChecksumError(f"{path}: checksum file unreadable ({exc}); the zoo weights cannot be verified (reinstall aedr)") from None
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0]):
            raise ChecksumError(f"{path}, line {number}: not 'SHA256  FILE' ({line[:80]!r}); the zoo weights cannot be verified (reinstall aedr)")
        out[parts[1].strip()] = parts[0]
    return out


def verify_model(name: str, weights_dir: Path = WEIGHTS_DIR) -> None:
    """Check every file of one model against the checksum file; raise :class:`ChecksumError` on any
    missing, extra or altered file, naming it."""
    weights_dir = Path(weights_dir)
    expected = {rel: d for rel, d in read_checksums(weights_dir).items() if rel.split("/", 1)[0] == name}
    folder = model_dir(name, weights_dir)
    if not expected:
        raise ChecksumError(f"zoo model {name!r}: no entry in {weights_dir / CHECKSUM_FILE}")
    present = {p.relative_to(weights_dir).as_posix() for p in folder.rglob("*") if p.is_file()}
    missing = sorted(set(expected) - present)
    if missing:
        raise ChecksumError(f"zoo model {name!r}: missing weight file(s) {', '.join(missing)} (reinstall aedr)")
    for rel in sorted(expected):
        try:
            actual = sha256_file(weights_dir / rel)
        except OSError as exc:
            raise ChecksumError(f"zoo model {name!r}: {weights_dir / rel} cannot be read ({exc.strerror or exc}) (reinstall aedr)") from None
        if actual != expected[rel]:
            raise ChecksumError(
                f"zoo model {name!r}: {weights_dir / rel} has sha256 {actual}, expected {expected[rel]} "
                f"from {weights_dir / CHECKSUM_FILE}; the file is corrupt or was modified (reinstall aedr, or "
                f"retrain with `aedr zoo train` which rewrites the checksums)"
            )
    extra = sorted(present - set(expected))
    if extra:
        raise ChecksumError(f"zoo model {name!r}: file(s) not in the checksum file: {', '.join(extra)}")
