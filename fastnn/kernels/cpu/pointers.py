"""Compiled functions passed to compiled loops as plain addresses.

Compiled loops call optional parts (an optimizer, clipping, a loss, a layer
kind) through pointers instead of calling them directly, so that one
compiled loop serves every choice and a part compiles only when a model
uses it. (A dispatcher passed directly would make Numba compile the loop
again for each part it is given; a direct callee is linked into every
caller and optimised again there.)

A pointer is the address of the part's Numba-ABI entry point, typed
``Pointer(sig)``, and ``call(pointer, *args)`` calls it. Numba's own
first-class functions (``types.FunctionType``) do the same job but cost
compile time at every use: each call site also emits a fallback that takes
the GIL and asks Python for a C wrapper's address, each argument of a
function called from Python is unboxed through Python calls with the
signature pickled into the code, and every callee needs that C wrapper
compiled. Measured on the inference loop: 0.85-1.0 s -> 0.7-0.75 s of
compile, its optimised code 253 -> 150 KB.

Safety: ``call`` checks the arguments against the pointer's signature at
compile time, as a call through ``FunctionType`` does, and the only
pointers are those ``function_pointer`` makes from a dispatcher compiled
for that very signature.
"""
import functools

from llvmlite import ir
from numba.core import cgutils, errors, types
from numba.core.datamodel import models
from numba.core.typing import signature
from numba.core.typing.typeof import typeof_impl
from numba.extending import NativeValue, intrinsic, register_model, unbox

from ...utils.interrupts import held_interrupts
from .. import prebuild


# Options of a function that only compiled code calls, through a pointer:
# Numba then builds neither the Python nor the C entry point it would
# otherwise compile for it.
NO_WRAPPERS = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)


class Pointer(types.Type):
    """The Numba type of a compiled function's address, by its signature."""

    def __init__(self, sig):
        self.sig = sig
        super().__init__(name=f"Pointer[{sig}]")


@register_model(Pointer)
class _PointerModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.IntType(64))


class FunctionPointer:
    """A compiled function's entry point as a value compiled code can call.

    Keeps the compile result, and with it the machine code, alive."""

    def __init__(self, cres, sig):
        self._cres = cres
        self.numba_type = Pointer(sig)
        self.address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


@typeof_impl.register(FunctionPointer)
def _typeof_function_pointer(val, c):
    return val.numba_type


@unbox(Pointer)
def _unbox_pointer(typ, obj, c):
    address = c.pyapi.object_getattr_string(obj, "address")
    value = c.pyapi.long_as_longlong(address)
    c.pyapi.decref(address)
    return NativeValue(value, is_error=c.pyapi.c_api_error())


@functools.lru_cache(maxsize=None)
def function_pointer(dispatcher, sig):
    """``dispatcher`` compiled for ``sig`` (or loaded from the cache) as a
    ``FunctionPointer``, which compiled code takes as an argument of type
    ``Pointer(sig)``. The dispatcher needs no C wrapper
    (``no_cfunc_wrapper=True``), and no Python one unless Python calls it too."""
    if sig.args not in dispatcher.overloads:   # an explicit signature compiles at import
        prebuild.ensure(dispatcher)     # a compile worker may be building it: then it loads from the cache
        with held_interrupts():   # a Ctrl-C inside Numba's compiler can leave the process unable to compile
            dispatcher.compile(sig)
    return FunctionPointer(dispatcher.overloads[sig.args], sig)


@intrinsic
def call(typingctx, fn, *args):
    """``call(pointer, *args)``: calls the function at ``pointer`` (a
    ``Pointer(sig)``) with ``args``, which must convert to ``sig``'s argument
    types; returns its result and passes its exceptions on."""
    if not isinstance(fn, Pointer):
        raise errors.TypingError(f"call() needs a Pointer, got {fn}")
    sig = fn.sig
    if len(args) != len(sig.args):
        raise errors.TypingError(f"{fn} takes {len(sig.args)} arguments, got {len(args)}")
    for k, (given, wanted) in enumerate(zip(args, sig.args)):
        if given != wanted and typingctx.can_convert(given, wanted) is None:
            raise errors.TypingError(f"argument {k} of a call to {fn}: cannot convert {given} to {wanted}")

    def codegen(context, builder, call_sig, llargs):
        given = call_sig.args[1].types
        values = [context.cast(builder, v, g, w)
                  for v, g, w in zip(cgutils.unpack_tuple(builder, llargs[1], len(given)), given, sig.args)]
        fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
        status, result = context.call_conv.call_function(builder, builder.inttoptr(llargs[0], fnty.as_pointer()),
                                                         sig.return_type, sig.args, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    return signature(sig.return_type, fn, types.StarArgTuple.from_types(args)), codegen


def pointer_from_address(sig):
    """An intrinsic ``cast(address)`` that types an int64 address held in an
    array (a program row's FWD/BWD, an output's batch loss) as ``Pointer(sig)``.
    Only addresses ``function_pointer(..., sig).address`` gave may be stored
    where such a cast reads them: the program builders are the only writers."""
    pointer_type = Pointer(sig)

    @intrinsic
    def cast(typingctx, address):
        if not isinstance(address, types.Integer):
            raise errors.TypingError(f"a function address must be an integer, got {address}")

        def codegen(context, builder, call_sig, llargs):
            return context.cast(builder, llargs[0], address, types.int64)

        return signature(pointer_type, address), codegen

    return cast
