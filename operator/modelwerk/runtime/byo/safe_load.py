"""Unpickling a model that user code wrote, without letting the pickle run user code.

Q: Why not ``joblib.load``?
A: Unpickling calls whatever callables the pickle names: a ``model.joblib`` from a trainer
   container could run ``os.system`` inside the evaluation pod, which holds the holdout and
   writes the verdict, and so grade itself. The contract is "a pipeline of classes the runtime
   image can import"; this loader enforces it. A pickle may name:

   - classes (never plain functions) from the libraries a model is built of — scikit-learn,
     NumPy, SciPy, pandas, XGBoost, LightGBM — and a few harmless built-in and collections
     types; of modelwerk itself only the classes in :data:`CLASSES`, by full name;
   - the handful of functions NumPy, pandas and copyreg pickle arrays, frames and plain
     objects with, and scikit-learn's univariate score functions (:data:`FUNCTIONS`).

   Anything else (``builtins.eval``, ``os.system``, ``functools.partial``, NumPy's
   ``_ufunc_reconstruct``, which imports any attribute by name, or a class of the user's own
   module) refuses the model before any object is built from it.

The bytes are hashed before they are unpickled and compared with the hash the upload step
recorded when the file left the trainer container.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from modelwerk.runtime.storage import open_uri

PACKAGES = frozenset({"sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm"})
"""Top-level packages whose classes a model may be built of."""
BUILTIN_TYPES = frozenset(
    {
        ("builtins", name)
        for name in (
            "object",
            "list",
            "dict",
            "set",
            "frozenset",
            "tuple",
            "slice",
            "range",
            "complex",
            "bytes",
            "bytearray",
            "int",
            "float",
            "str",
            "bool",
        )
    }
    | {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
FUNCTIONS = frozenset(
    {
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.internals.blocks", "new_block"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    }
    | {
        # Score functions that feature selectors hold as parameters (pure computations).
        ("sklearn.feature_selection._univariate_selection", name)
        for name in ("f_classif", "f_regression", "chi2", "r_regression")
    }
    | {
        ("sklearn.feature_selection._mutual_info", name)
        for name in ("mutual_info_classif", "mutual_info_regression")
    }
)


CLASSES = frozenset({("modelwerk.runtime.trainer.xgb_labels", "LabelledXGBClassifier")})
"""modelwerk's own model classes, each by its full name (never the package): XGBoost's
classifier on any labels, whose state is XGBoost's plus the label array."""


ARRAY_API_ALIASES = ("array_api_compat.numpy._aliases",)
"""Modules of the array-API wrappers around NumPy (SciPy's splines keep one, vendored under
``scipy._lib`` or ``sklearn.externals``): their own functions are array computations."""


class UnsafeModel(Exception):
    """The file names something a model may not be made of, or is not what was uploaded."""


def _allowed(module: str, name: str, obj: Any) -> bool:
    if (module, name) in FUNCTIONS or (module, name) in BUILTIN_TYPES:
        return True
    if (module, name) in CLASSES:
        return isinstance(obj, type)
    top = module.split(".", 1)[0]
    if top in PACKAGES and module.endswith(ARRAY_API_ALIASES):
        return callable(obj) and getattr(obj, "__module__", None) == module
    return top in PACKAGES and isinstance(obj, type) and not issubclass(obj, type)


def _unpickler_class() -> type[Any]:
    from joblib.numpy_pickle import NumpyUnpickler

    class RestrictedUnpickler(NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            try:
                obj = super().find_class(module, name)
            except (ImportError, AttributeError) as error:
                raise UnsafeModel(
                    f"the model needs {module}.{name}, which the runtime image cannot import "
                    "(use classes of scikit-learn, XGBoost or LightGBM)"
                ) from error
            if not _allowed(module, name, obj):
                raise UnsafeModel(
                    f"the model refers to {module}.{name}: a model may be built of classes of "
                    f"{', '.join(sorted(PACKAGES))} only, never functions or other modules"
                )
            return obj

    return RestrictedUnpickler


def loads(raw: bytes) -> Any:
    """Unpickle a joblib file's bytes, allowing only what :func:`_allowed` allows."""
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    unpickler_class = _unpickler_class()
    with _validate_fileobject_and_memmap(io.BytesIO(raw), "", None) as (handle, _):
        if isinstance(handle, str):
            raise UnsafeModel("the file is a joblib pickle older than 0.10, which is not read")
        try:
            return unpickler_class("", handle, ensure_native_byte_order=True).load()
        except UnsafeModel:
            raise
        except Exception as error:
            raise UnsafeModel(f"not a joblib file: {type(error).__name__}: {error}") from error


def read_verified(uri: str, sha256: str) -> bytes:
    """The bytes at ``uri``, if they hash to ``sha256`` (read once: what was hashed is what
    is loaded)."""
    with open_uri(uri, "rb") as handle:
        raw: bytes = handle.read()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise UnsafeModel(
            f"{uri} has sha256 {actual}, not the {sha256} recorded when the trainer finished"
        )
    return raw


def load_verified(uri: str, sha256: str) -> Any:
    """The model at ``uri``, if its bytes hash to ``sha256`` and unpickle safely."""
    return loads(read_verified(uri, sha256))
