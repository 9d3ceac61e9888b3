"""A restricted reader for whole pickled models (pytorch-wavenet's snapshots) that never imports
or runs the code of the project that wrote them.

``torch.save(model)`` pickles the model object, so the file names the model's classes
(``wavenet_model.WaveNetModel``) and unpickling normally imports them and runs their code. Here
the unpickler's ``find_class`` answers only an allow-list: the model's classes become inert
:class:`Record` objects that keep the state the pickle gives them, tensors are rebuilt by torch's
own rebuild functions (those that ``weights_only`` loading also uses), and any other name is
refused before anything is called. The tensors themselves come from the file's storage records
through ``torch.load``, which is handed this module as its ``pickle_module``.
"""
from __future__ import annotations

import collections
import pickle
import types

import torch

from wavebench_base.errors import InputError


class Record:
    """An inert stand-in for an object of a class named in a pickle.

    It keeps what the pickle hands it and has no other behaviour: ``args``, the arguments the
    pickle constructs it with, and ``state``, what the pickle restores into it (for a torch
    module its ``__dict__``: ``_parameters``, ``_modules`` and the plain attributes).
    """

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        record = object.__new__(cls)
        record.args = args
        record.state = {}
        return record

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<record of {self.qualname}>"


class TypeName:
    """An inert stand-in for a type that a pickle only refers to (a model's ``dtype`` attribute,
    ``torch.FloatTensor``): it has a name and cannot be called."""

    def __init__(self, qualname: str):
        self.qualname = qualname

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError(f"the pickle calls {self.qualname}, which this reader "
                                     f"does not run")

    def __repr__(self):
        return self.qualname


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a class or function outside the allow-list."""

    def __init__(self, qualname: str):
        super().__init__(f"refused global {qualname}")
        self.qualname = qualname


def _record_class(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[1], (Record,), {"qualname": qualname})


#: The classes of a pickled pytorch-wavenet model, each read as a :class:`Record`.
RECORDED = ("wavenet_model.WaveNetModel", "wavenet_modules.DilatedQueue",
            "torch.nn.modules.conv.Conv1d", "torch.nn.modules.container.ModuleList")
#: Types that a pickled model only refers to (its ``dtype`` attributes).
NAMED = ("torch.FloatTensor", "torch.DoubleTensor", "torch.HalfTensor",
         "torch.cuda.FloatTensor", "torch.cuda.DoubleTensor", "torch.cuda.HalfTensor")

ALLOWED: dict[str, object] = {
    # torch's own rebuilders, the same that torch's weights_only unpickler allows
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    "collections.OrderedDict": collections.OrderedDict,
    "__builtin__.set": set,  # protocol 2 spells builtins the Python 2 way
    "builtins.set": set,
    **{name: _record_class(name) for name in RECORDED},
    **{name: TypeName(name) for name in NAMED},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals are :data:`ALLOWED` and nothing else."""

    def find_class(self, module, name):
        qualname = f"{module}.{name}"
        if qualname in ALLOWED:
            return ALLOWED[qualname]
        raise RefusedGlobal(qualname)


def _load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


#: Stands in for the ``pickle`` module in ``torch.load(..., pickle_module=...)``: torch
#: subclasses its ``Unpickler`` (mapping storage types to its own inert ones first, then calling
#: our ``find_class``) and calls its ``load`` for the legacy format's headers.
restricted_pickle = types.ModuleType("wavebench_restricted_pickle", __doc__)
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _load
restricted_pickle.UnpicklingError = pickle.UnpicklingError


def load_restricted(path):
    """Read a ``torch.save``d object graph with only the :data:`ALLOWED` globals.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    object
        The unpickled object; model objects are :class:`Record` instances.

    Raises
    ------
    RefusedGlobal
        The pickle names any other class or function (nothing has been called).
    Exception
        Whatever torch or pickle raise for a damaged file.
    """
    return torch.load(path, map_location="cpu", weights_only=False,
                      pickle_module=restricted_pickle)


def module_state_dict(record, path, prefix: str = "", depth: int = 0) -> dict:
    """The state_dict of a recorded torch module: its parameters and persistent buffers, then
    its children's, as ``nn.Module.state_dict`` orders them, found without running any code."""
    if depth > 32:
        raise InputError("the pickled model nests modules more than 32 deep", path)
    state = record.state if isinstance(record, Record) else None
    if not isinstance(state, dict):
        raise InputError(f"the pickled module {prefix.rstrip('.') or 'at the top'} has no "
                         f"attribute dict", path)
    out = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for entry in ("_parameters", "_buffers"):
        table = state.get(entry) or {}
        if not isinstance(table, dict):
            raise InputError(f"the pickled module's {prefix}{entry} is not a dict", path)
        for name, value in table.items():
            if value is None or (entry == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise InputError(f"{prefix}{name} in the pickled model is a "
                                 f"{type(value).__name__}, not a tensor", path)
            out[prefix + str(name)] = value.detach()
    children = state.get("_modules") or {}
    if not isinstance(children, dict):
        raise InputError(f"the pickled module's {prefix}_modules is not a dict", path)
    for name, child in children.items():
        if child is not None:
            out.update(module_state_dict(child, path, f"{prefix}{name}.", depth + 1))
    return out
