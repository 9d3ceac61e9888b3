"""Other projects' WaveNet checkpoints as wavebench checkpoints ("bring your own WaveNet").

Two sources are read: pytorch-wavenet (github.com/vincentherrmann/pytorch-wavenet), a bare
state_dict or the whole pickled model, and wavenet_vocoder (github.com/r9y9/wavenet_vocoder),
``train.py``'s checkpoints with their hparams JSON. Nothing from either project is imported or
run: state_dicts load with ``weights_only=True`` and pickled models with the allow-list of
:mod:`reference_model.convert.safe_pickle`. The converted model computes the source's outputs
(tested to 1e-5 against the source's own outputs, ``tests/test_convert.py``), one position later
because wavebench's model shifts its input by one sample.

Examples
--------
>>> from reference_model.convert import convert_checkpoint
>>> convert_checkpoint("pytorch-wavenet", "snapshot.pt", "model.pt",
...                    hparams="config.json")  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from reference_model.checkpoint import check_weights, save_checkpoint
from reference_model.convert import pytorch_wavenet, wavenet_vocoder
from reference_model.convert.common import Converted
from reference_model.model import state_shapes
from wavebench_base.errors import InputError
from wavebench_base.runinfo import file_sha256

__all__ = ["SOURCES", "Converted", "convert", "convert_checkpoint"]

#: ``--from`` name -> (the name recorded in the checkpoint, the converter module).
SOURCES = {"pytorch-wavenet": ("pytorch-wavenet", pytorch_wavenet),
           "wavenet-vocoder": ("wavenet_vocoder", wavenet_vocoder)}


def convert(source: str, path, hparams=None) -> Converted:
    """Read another project's checkpoint as a wavebench config and state_dict.

    Parameters
    ----------
    source : {"pytorch-wavenet", "wavenet-vocoder"}
    path : str or Path
        The source checkpoint.
    hparams : str or Path, optional
        A JSON file of the source's hyper-parameters: required for wavenet_vocoder and for a
        bare pytorch-wavenet state_dict of several layers; checked against the weights.

    Returns
    -------
    Converted
        ``config``, ``state`` (the state_dict of ``WaveNet(config)``) and ``transformations``.

    Raises
    ------
    InputError
        One line naming the file at fault (see each converter).
    """
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; available: {', '.join(SOURCES)}")
    converted = SOURCES[source][1].convert(path, hparams)
    # the converters check every shape; this is the model's own view of the same, as a guard
    check_weights(state_shapes(converted.config), converted.state, path)
    return converted


def convert_checkpoint(source: str, path, out, hparams=None) -> tuple[Path, Converted]:
    """Convert ``path`` and write it as a wavebench checkpoint at ``out`` (atomically).

    The checkpoint's ``converted`` entry records the source (``"pytorch-wavenet"`` or
    ``"wavenet_vocoder"``), the source file's name and SHA-256, those of the hparams file if
    one was given, and the list of transformations.

    Returns
    -------
    (Path, Converted)
        The checkpoint written, and the conversion.
    """
    path, out = Path(path), Path(out)
    if out.exists() and path.exists() and out.resolve() == path.resolve():
        raise InputError("the output would overwrite the source checkpoint; choose another -o",
                         out)
    converted = convert(source, path, hparams)
    record = {"source": SOURCES[source][0], "source_file": path.name,
              "source_sha256": file_sha256(path),
              "transformations": list(converted.transformations)}
    if hparams is not None:
        record["hparams_file"] = Path(hparams).name
        record["hparams_sha256"] = file_sha256(Path(hparams))
    written = save_checkpoint(out, config=converted.config, model_state=converted.state,
                              converted=record)
    return written, converted
