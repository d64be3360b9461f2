"""Artifacts: a model saved as a JSON spec plus a safetensors file, never a pickle.

Layout (see docs/artifacts.md)::

    model.dr/                 a directory
        spec.json             graph, hyperparameters, seed keys, generator, fingerprints
        tensors.safetensors   trained tensors only (adapters, gates, heads, Ridge readouts)

Frozen tensors are not stored: loading regenerates them from the seed keys and
checks each against the fingerprint recorded at save time. ``spec.json``
records the SHA-256 of the tensor file and the tensor file's header records the
SHA-256 of the spec, so truncation, accidental corruption and mismatched pairs
are caught, each with an :class:`~deepreservoir.errors.ArtifactError` naming the
file. The hashes are unkeyed: against a deliberate edit, sign with a key
(``save(..., key=k)``, an HMAC in ``signature.json``) and ``load(path, key=k)``. Writing is
atomic: the directory is assembled beside its destination, then renamed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepreservoir._version import __version__
from deepreservoir.composition import model_class
from deepreservoir.constraints import AnyOf, Predicate, validate_params
from deepreservoir.errors import ArtifactError
from deepreservoir.graph import Link
from deepreservoir.kinds import FrozenWeights
from deepreservoir.lora import RankCappedWarning
from deepreservoir.nodes.base import Node
from deepreservoir.seeding import GENERATOR, GENERATOR_VERSION, SeedKey

__all__ = ["FORMAT", "FORMAT_VERSION", "KEY", "PATH", "load", "load_state_into", "read_spec",
           "register_node", "save"]

FORMAT = "deepreservoir"
FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
TENSOR_FILE = "tensors.safetensors"
SIGNATURE_FILE = "signature.json"
_SIGNATURE_DOMAIN = b"deepreservoir artifact signature v1\n"
_EXTRA_NODES: dict[str, type] = {}
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}


#: The constraints on ``path`` (of :func:`save`, :func:`load`, ...) and a signing ``key``.
PATH = Predicate(lambda value: isinstance(value, (str, os.PathLike))
                 and isinstance(os.fspath(value), str) and os.fspath(value) != "",
                 "a path (a non-empty str or os.PathLike)")
KEY = Predicate(lambda value: isinstance(value, (bytes, bytearray, str)) and len(value) > 0,
                "a non-empty bytes or str key")
_BOOL = Predicate(lambda value: isinstance(value, bool), "a bool (True or False)")
_MODEL = Predicate(lambda value: isinstance(value, model_class()),
                   "a deepreservoir Model (a node alone: dr.Model.from_node(node))")
_KEYWORDS = {
    "save": {"model": _MODEL, "path": PATH, "overwrite": _BOOL, "key": AnyOf((None, KEY))},
    "load": {"path": PATH, "strict": _BOOL, "key": AnyOf((None, KEY))},
    "load_state_into": {"path": PATH, "key": AnyOf((None, KEY))},
}


def register_node(cls: type) -> type:
    """Allow :func:`load` to rebuild a user-defined node class (usable as a decorator)."""
    _EXTRA_NODES[cls.__name__] = cls
    return cls


def _node_classes() -> dict[str, type]:
    classes = Node.registered_classes()
    classes.update(_EXTRA_NODES)
    return classes


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _frozen_fingerprints(node: Node) -> dict[str, str]:
    if not isinstance(node, FrozenWeights) or not node.built:
        return {}
    return node.frozen_fingerprints()


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _node_spec(name: str, node: Node, explicit: dict[str, torch.Tensor]) -> dict[str, Any]:
    from deepreservoir.constraints import is_array_like

    params = dict(node.hyperparameters())
    for key, value in list(params.items()):
        raw = getattr(node, key, None)
        if isinstance(value, dict) and set(value) == {"array"} and is_array_like(raw):
            tensor_name = f"__explicit__.{name}.{key}"
            explicit[tensor_name] = torch.as_tensor(raw).detach().cpu().contiguous()
            params[key] = {"array": tensor_name}
    state = {k: _json_value(v) for k, v in node.artifact_state().items()}
    key = node.seed_key_
    return {
        "name": name, "user_name": node.user_name, "class": type(node).__name__,
        "hyperparameters": params,
        "dtype": _dtype_name(node.dtype),
        "built": bool(node.built),
        "input_dim": node.input_dim,
        "output_dim": node.output_dim,
        "seed_key": None if key is None else {"root": key.root, "path": key.path},
        "state": state,
        "frozen_fingerprints": _frozen_fingerprints(node) if node.built else {},
    }


def _spec(model, explicit: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "generator": {"name": GENERATOR, "version": GENERATOR_VERSION},
        "model": {"seed": int(model.seed)},
        "nodes": [_node_spec(name, node, explicit) for name, node in model.nodes.items()],
        "edges": [{"source": e.source, "target": e.target, "delay": e.delay,
                   "feedback": e.feedback} for e in model.edges],
    }


def _is_artifact_dir(path: Path) -> bool:
    spec = path / SPEC_FILE
    if not spec.is_file():
        return False
    try:
        return json.loads(spec.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _signature(key: bytes | bytearray | str, spec: dict[str, Any]) -> str:
    """HMAC-SHA256 of the canonical spec, which holds the tensor file's SHA-256."""
    secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    message = _SIGNATURE_DOMAIN + _canonical(spec).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _verify_signature(folder: Path, spec: dict[str, Any], key: bytes | str) -> None:
    path = folder / SIGNATURE_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{folder} is not signed (it has no {SIGNATURE_FILE}), but a key was given: sign it "
            f"with save(..., key=...), or load it without a key to accept it unsigned.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        recorded = str(record["hmac"] if record["algorithm"] == "HMAC-SHA256" else "").encode()
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ArtifactError(f"{path} is not a signature record: {error!r}.") from None
    if not hmac.compare_digest(_signature(key, spec).encode(), recorded):
        raise ArtifactError(
            f"{path} does not match the artifact under the given key: {folder} was modified "
            f"after it was signed, or it was signed with another key.")


def save(model, path: str | os.PathLike, *, overwrite: bool = True,
         key: bytes | str | None = None) -> Path:
    """Write a model as ``path/spec.json`` + ``path/tensors.safetensors``, atomically.

    Parameters
    ----------
    model : Model
    path : str or Path
        The artifact directory (conventionally ending in ``.dr``); missing
        parent directories are created.
    overwrite : bool
        Replace an existing artifact at ``path``. A path holding anything other
        than a deepreservoir artifact is never replaced.
    key : bytes or str, optional
        Sign the artifact: ``signature.json`` holds an HMAC-SHA256 of the spec
        (which holds the tensor file's SHA-256). ``load(path, key=key)`` then
        refuses any edit, even one that recomputes the hashes.

    Returns
    -------
    Path
        The artifact directory.

    Raises
    ------
    ParameterError
        A keyword of the wrong type (``path`` not a path, ...).
    ArtifactError
        ``path`` holds something other than an artifact, or cannot be written.
    """
    from safetensors.torch import save_file

    validate_params("save", {"model": model, "path": path, "overwrite": overwrite, "key": key},
                    _KEYWORDS["save"])
    target = Path(path)
    if target.exists():
        if not target.is_dir() or not _is_artifact_dir(target):
            kind = "a directory" if target.is_dir() else "a file"
            raise ArtifactError(
                f"The 'path' argument of save must be a new path or an existing artifact. "
                f"Got {target}, {kind} that is not a deepreservoir artifact directory, so it "
                f"is left untouched.")
        if not overwrite:
            raise ArtifactError(f"Cannot save to {target}: it exists and overwrite=False.")
    try:
        return _write(model, target, key, save_file)
    except OSError as error:
        raise ArtifactError(f"Cannot save to {target} (the 'path' argument of save): "
                            f"{error.strerror or error}.") from None


def _write(model, target: Path, key: bytes | str | None, save_file) -> Path:
    explicit: dict[str, torch.Tensor] = {}
    spec = _spec(model, explicit)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update(explicit)
    spec_digest = hashlib.sha256(_canonical(spec).encode()).hexdigest()
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        tensor_path = staging / TENSOR_FILE
        save_file(tensors, str(tensor_path),
                  metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                            "spec_sha256": spec_digest})
        spec["tensors"] = {"file": TENSOR_FILE, "sha256": _sha256(tensor_path),
                           "bytes": tensor_path.stat().st_size, "keys": sorted(tensors)}
        text = json.dumps(spec, indent=1, ensure_ascii=False)
        (staging / SPEC_FILE).write_text(text, encoding="utf-8")
        written = [tensor_path, staging / SPEC_FILE]
        if key is not None:  # over the spec as load() will read it back
            record = {"algorithm": "HMAC-SHA256", "hmac": _signature(key, json.loads(text))}
            (staging / SIGNATURE_FILE).write_text(json.dumps(record), encoding="utf-8")
            written.append(staging / SIGNATURE_FILE)
        # safetensors writes 0600: give the tensors spec.json's mode (0666 less the umask)
        os.chmod(tensor_path, (staging / SPEC_FILE).stat().st_mode & 0o7777)
        for file in written:
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _folder(path: str | os.PathLike, function: str, **keywords: Any) -> Path:
    """The artifact directory ``path`` names (``path/spec.json`` names it too), after
    checking the keywords of ``function``."""
    validate_params(function, {"path": path, **keywords}, _KEYWORDS.get(function, {"path": PATH}))
    folder = Path(path)
    if folder.is_file() and folder.name == SPEC_FILE:
        folder = folder.parent
    if not folder.exists():
        raise ArtifactError(
            f"The 'path' argument of {function} must be a deepreservoir artifact directory. "
            f"Got {folder}, which does not exist.")
    if not folder.is_dir():
        raise ArtifactError(
            f"The 'path' argument of {function}: {folder} is not a deepreservoir artifact: an "
            f"artifact is a directory holding {SPEC_FILE} and {TENSOR_FILE}; this is a file.")
    return folder


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``spec.json`` of an artifact, after checking it is one we can read.

    Raises
    ------
    ArtifactError
        Not an artifact directory; a spec that is not JSON, of another format or
        newer version, or incomplete. (``ParameterError``: ``path`` not a path.)
    """
    folder = _folder(path, "read_spec")
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise ArtifactError(
            f"{folder} is not a deepreservoir artifact: it has no {SPEC_FILE}.")
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ArtifactError(
            f"{spec_path} is not a deepreservoir spec: it is not valid JSON ({error}). The file "
            f"may be truncated or tampered with.") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        got = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise ArtifactError(
            f"{spec_path} is not a deepreservoir spec: its 'format' must be {FORMAT!r}. "
            f"Got {got!r}.")
    version = spec.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ArtifactError(
            f"{spec_path} has an invalid 'format_version': it must be an int >= 1. Got "
            f"{version!r}.")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{spec_path} was written in artifact format version {version} (deepreservoir "
            f"{spec.get('library_version', '?')}), newer than the version {FORMAT_VERSION} this "
            f"deepreservoir {__version__} reads. Upgrade deepreservoir to load it.")
    generator = spec.get("generator")
    generator = generator if isinstance(generator, dict) else {}
    if generator.get("name") != GENERATOR or generator.get("version") != GENERATOR_VERSION:
        raise ArtifactError(
            f"{spec_path} needs the weight generator {generator.get('name')!r} version "
            f"{generator.get('version')!r}; this deepreservoir has {GENERATOR!r} version "
            f"{GENERATOR_VERSION}.")
    for field, kind in (("nodes", list), ("edges", list), ("tensors", dict), ("model", dict)):
        if field not in spec:
            raise ArtifactError(f"{spec_path} is incomplete: it has no {field!r} entry.")
        if not isinstance(spec[field], kind):
            raise ArtifactError(
                f"{spec_path} is malformed: its {field!r} entry must be a {kind.__name__}. Got "
                f"a {type(spec[field]).__name__}.")
    return spec


def _read_tensors(folder: Path, spec: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    info = spec["tensors"]
    if info.get("file", TENSOR_FILE) != TENSOR_FILE:
        raise ArtifactError(
            f"{folder / SPEC_FILE}: the tensor file must be {TENSOR_FILE!r}. Got "
            f"{info.get('file')!r}.")
    tensor_path = folder / TENSOR_FILE
    if not tensor_path.is_file():
        raise ArtifactError(f"The artifact {folder} is incomplete: {tensor_path} is missing.")
    size = tensor_path.stat().st_size
    digest = _sha256(tensor_path)
    recorded = info.get("bytes")
    if digest != info.get("sha256") or size != recorded:
        truncated = isinstance(recorded, int) and size < recorded
        reason = "truncated" if truncated else "modified"
        raise ArtifactError(
            f"{tensor_path} does not match its spec: the file is {size} bytes with SHA-256 "
            f"{digest[:16]}..., but {SPEC_FILE} records {info.get('bytes')} bytes with SHA-256 "
            f"{str(info.get('sha256'))[:16]}... The file was {reason} after saving.")
    try:
        with safe_open(str(tensor_path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises several types
        raise ArtifactError(f"{tensor_path} is not a readable safetensors file: {error}.") \
            from None
    if sorted(tensors) != info.get("keys"):
        raise ArtifactError(f"{tensor_path} does not hold the tensors {SPEC_FILE} records.")
    expected = hashlib.sha256(_canonical({k: v for k, v in spec.items() if k != "tensors"})
                              .encode()).hexdigest()
    if metadata.get("spec_sha256") != expected:
        raise ArtifactError(
            f"{folder / SPEC_FILE} does not match {tensor_path}: the spec's SHA-256 is "
            f"{expected[:16]}... but the tensor file was saved with spec SHA-256 "
            f"{str(metadata.get('spec_sha256'))[:16]}... The spec was edited after saving, or "
            f"the two files come from different artifacts.")
    return tensors


def _construct(entry: dict[str, Any], tensors: dict[str, torch.Tensor], spec_path: Path):
    import inspect

    classes = _node_classes()
    cls = classes.get(entry.get("class"))
    if cls is None:
        raise ArtifactError(
            f"{spec_path}: node {entry.get('name')!r} has class {entry.get('class')!r}, which is "
            f"not a known node class ({', '.join(sorted(classes))}). Register custom classes with "
            f"deepreservoir.io.register_node.")
    kwargs = dict(entry.get("hyperparameters", {}))
    for key, value in list(kwargs.items()):
        if isinstance(value, dict) and set(value) == {"array"} and isinstance(value["array"], str):
            kwargs[key] = tensors[value["array"]].double().numpy()
    signature = inspect.signature(cls.__init__).parameters
    if "name" in signature:
        kwargs["name"] = entry.get("user_name")
    if "dtype" in signature:
        kwargs["dtype"] = _DTYPES[entry.get("dtype", "float32")]
    if "input_dim" in signature and "input_dim" not in kwargs:
        kwargs["input_dim"] = entry.get("input_dim")
    if "seed" in kwargs and "seed" not in signature:
        kwargs.pop("seed")
    try:
        node = cls(**kwargs)
    except Exception as error:
        raise ArtifactError(
            f"{spec_path}: node {entry.get('name')!r} of class {entry['class']} cannot be "
            f"rebuilt from its hyperparameters: {error}") from None
    node.user_name = entry.get("user_name")
    node.to(_DTYPES[entry.get("dtype", "float32")])  # nodes without a dtype argument too
    return node


def load(path: str | os.PathLike, *, strict: bool = True, key: bytes | str | None = None):
    """Read an artifact written by :func:`save`: regenerate, verify, and load.

    Parameters
    ----------
    path : str or Path
        The artifact directory.
    strict : bool
        Fail on any fingerprint mismatch (default). ``False`` turns mismatches into
        warnings, e.g. for the LAPACK-dependent families (orthogonal, spectral_radius)
        across machines.
    key : bytes or str, optional
        Require a signature under this key (see :func:`save`). Without a key a
        signature is not checked, and the unkeyed SHA-256 checks catch accidental
        corruption only, not a deliberate edit that recomputes them.

    Returns
    -------
    Model
        In eval mode, on CPU, with every node built.

    Raises
    ------
    ParameterError
        A keyword of the wrong type (``path`` not a path, ...).
    ArtifactError
        The path is not an artifact, a file is truncated or corrupted, the format
        is newer than this library, the signature is missing or wrong (with
        ``key``), or a regenerated frozen tensor does not match its fingerprint;
        the message names the file and the node.
    """
    folder = _folder(path, "load", strict=strict, key=key)
    spec = read_spec(folder)
    if key is not None:
        _verify_signature(folder, spec, key)
    tensors = _read_tensors(folder, spec)
    try:
        model = _assemble(spec, tensors, folder, strict)
    except (ArtifactError, Warning):
        raise
    except Exception as error:  # a spec that passed the checks but does not make a model
        raise ArtifactError(
            f"{folder / SPEC_FILE}: the model cannot be rebuilt from it "
            f"({type(error).__name__}: {error}).") from None
    model.eval()
    return model


def _assemble(spec: dict[str, Any], tensors: dict[str, torch.Tensor], folder: Path,
              strict: bool):
    spec_path = folder / SPEC_FILE
    nodes = [_construct(entry, tensors, spec_path) for entry in spec["nodes"]]
    by_saved = dict(zip([entry["name"] for entry in spec["nodes"]], nodes, strict=True))
    links = [Link(by_saved[e["source"]], by_saved[e["target"]], int(e["delay"]),
                  bool(e["feedback"])) for e in spec["edges"]]
    model = model_class()(nodes, links, seed=int(spec["model"]["seed"]))
    # Artifacts of earlier releases named unnamed nodes by a process-wide counter
    # ("Scaffold-17"); names now follow the structure, so map old names to new ones.
    renamed = {old: model.name_of(node) for old, node in by_saved.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankCappedWarning)  # it was shown at training time
        for entry, node in zip(spec["nodes"], nodes, strict=True):
            _rebuild(entry, node, spec_path, strict)
    _load_tensors(model, _renamed(tensors, renamed), folder / TENSOR_FILE)
    return model


def _renamed(tensors: dict[str, torch.Tensor], renamed: dict[str, str]) -> dict[str, torch.Tensor]:
    result = {}
    for key, value in tensors.items():
        if key.startswith("__explicit__."):
            continue
        parts = key.split(".")
        if len(parts) > 2 and parts[0] == "nodes" and parts[1] in renamed:
            parts[1] = renamed[parts[1]]
        result[".".join(parts)] = value
    return result


def _rebuild(entry: dict[str, Any], node: Node, spec_path: Path, strict: bool) -> None:
    state = entry.get("state", {})
    node.restore_artifact_state(state)
    if not entry.get("built"):
        return
    key = entry.get("seed_key")
    seed_key = None if key is None else SeedKey(int(key["root"]), str(key["path"]))
    try:
        node.build(int(entry["input_dim"]), seed_key, entry.get("output_dim"))
    except Exception as error:
        raise ArtifactError(
            f"{spec_path}: node {entry['name']!r} cannot be rebuilt: {error}") from None
    problems = []
    stored_print = state.get("W_fingerprint_")
    now_print = node.source_fingerprint() if isinstance(node, FrozenWeights) else None
    if stored_print is not None and now_print != stored_print:
        problems.append(f"the unscaled W has fingerprint {now_print} but the artifact "
                        f"records {stored_print}")
    now = _frozen_fingerprints(node)
    for name, expected in entry.get("frozen_fingerprints", {}).items():
        if now.get(name) != expected:
            problems.append(f"the regenerated frozen tensor {name!r} has fingerprint "
                            f"{now.get(name)} but the artifact records {expected}")
    if problems:
        message = (f"{spec_path}: node {entry['name']!r} ({entry['class']}) does not regenerate "
                   f"as saved: {'; '.join(problems)}. The seed, family or generator differ "
                   f"from the ones the model was trained with.")
        if strict:
            raise ArtifactError(message)
        warnings.warn(message, stacklevel=3)


def _load_tensors(model, tensors: dict[str, torch.Tensor], tensor_path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ArtifactError(
            f"{tensor_path} does not fit the model: missing tensors {missing[:5]}, unexpected "
            f"tensors {unexpected[:5]}.")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ArtifactError(
                f"{tensor_path}: tensor {key!r} has shape {tuple(value.shape)} but the model "
                f"expects {tuple(expected[key].shape)}.")
    model.load_state_dict(tensors, strict=True)


def load_state_into(model, path: str | os.PathLike, *, key: bytes | str | None = None) -> None:
    """Load an artifact's trained tensors into an existing, built model of the same spec.

    Parameters
    ----------
    model : Model
    path : str or Path
        The artifact directory.
    key : bytes or str, optional
        Require a signature under this key, as :func:`load` does.

    Raises
    ------
    ArtifactError
        The artifact's nodes are not the model's (naming the node that is missing),
        a frozen tensor does not match, or (with ``key``) the signature is
        missing or does not match.
    """
    folder = _folder(path, "load_state_into", key=key)
    spec = read_spec(folder)
    if key is not None:
        _verify_signature(folder, spec, key)
    tensors = _read_tensors(folder, spec)
    names = [entry["name"] for entry in spec["nodes"]]
    for name in names:
        if name not in model.nodes:
            raise ArtifactError(
                f"{folder / SPEC_FILE} holds node {name!r}, which the model does not have "
                f"(it has {', '.join(model.nodes)}); the artifact was saved from another "
                f"model.")
    if sorted(names) != sorted(model.nodes):
        raise ArtifactError(
            f"{folder / SPEC_FILE} holds nodes {sorted(names)} but the model has "
            f"{sorted(model.nodes)}.")
    for entry in spec["nodes"]:
        node = model.nodes[entry["name"]]
        now = _frozen_fingerprints(node) if node.built else {}
        for name, expected in entry.get("frozen_fingerprints", {}).items():
            if now.get(name) != expected:
                raise ArtifactError(
                    f"{folder / SPEC_FILE}: node {node.name!r} does not match the model: its "
                    f"frozen tensor {name!r} has fingerprint {now.get(name)}, the artifact "
                    f"records {expected}.")
    _load_tensors(model, {k: v for k, v in tensors.items() if not k.startswith("__explicit__.")},
                  folder / TENSOR_FILE)
