"""Choose MuJoCo's OpenGL backend for headless rendering (DMC pixels, evaluation videos).

dm_control reads ``MUJOCO_GL`` once, when ``dm_control._render`` is first imported (``import
dm_control.suite`` does it), and with it unset prefers GLFW, which needs a display. So
:func:`configure_gl` runs before that import (``envs.dmc`` calls it first thing) and picks:

1. a user-set ``MUJOCO_GL``, as is (no probing);
2. else ``egl`` if an EGL device display can be initialised: headless, on a GPU when there is
   one, else Mesa's software rasteriser (llvmpipe, ~30-50 frames/s at 84x84 on one CPU core);
3. else ``osmesa`` if libOSMesa loads and makes a context (software);
4. else nothing: state observations still work, and rendering raises
   :class:`GLUnavailableError`, which names the Debian packages to install.

The probes use ctypes only (no PyOpenGL import, which would fix PyOpenGL's platform), in a few
milliseconds. The chosen name is written to ``os.environ["MUJOCO_GL"]``, so child processes
(sweeps) inherit it and skip the probes.

If dm_control was imported before this module could choose (``MUJOCO_GL`` unset, so dm_control
auto-picked GLFW or nothing), :func:`configure_gl` points dm_control at the chosen backend's
context class; renderers are created lazily, so physics built earlier render with it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_EGL_PLATFORM_DEVICE_EXT = 0x313F
_OSMESA_RGBA = 0x1908  # GL_RGBA
_MAX_EGL_DEVICES = 16
_DISABLED = ("disable", "disabled", "off", "false", "0")  # dm_control's "no renderer" names

INSTALL_HINT = (
    "Install EGL (headless; GPU or software rendering): `apt-get install libegl1 libgl1` "
    "(Debian/Ubuntu), or OSMesa (software, used when EGL fails): `apt-get install libosmesa6`. "
    "Or set MUJOCO_GL to a backend that works here (egl, osmesa, or glfw with a display)."
)


class GLUnavailableError(RuntimeError):
    """No OpenGL backend can render MuJoCo scenes in this process."""


# Module state, set once by configure_gl().
_configured = False
_backend: str | None = None
_error: GLUnavailableError | None = None


def _load_first(names: tuple[str, ...], short: str) -> ctypes.CDLL | None:
    """The first of ``names`` that dlopen()s, else ``find_library(short)``, else None."""
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    found = ctypes.util.find_library(short)  # slower: runs ldconfig
    try:
        return ctypes.CDLL(found) if found else None
    except OSError:
        return None


def probe_egl() -> str | None:
    """None if an EGL device display can be initialised (as dm_control does), else why not.

    The display is left initialised: terminating it could tear down one dm_control shares.
    """
    egl = _load_first(("libEGL.so.1", "libEGL.so"), "EGL")
    if egl is None:
        return "libEGL.so.1 not found (package libegl1)"
    if _load_first(("libOpenGL.so.0", "libGL.so.1", "libGL.so"), "GL") is None:
        return "neither libOpenGL.so.0 nor libGL.so.1 found (package libgl1 or libopengl0)"
    get_proc = egl.eglGetProcAddress
    get_proc.restype, get_proc.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    query_addr = get_proc(b"eglQueryDevicesEXT")
    display_addr = get_proc(b"eglGetPlatformDisplayEXT")
    if not query_addr or not display_addr:
        return "libEGL lacks eglQueryDevicesEXT / eglGetPlatformDisplayEXT"
    query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                             ctypes.POINTER(ctypes.c_int))(query_addr)
    get_display = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p,
                                   ctypes.c_void_p)(display_addr)
    devices = (ctypes.c_void_p * _MAX_EGL_DEVICES)()
    count = ctypes.c_int(0)
    if not query(_MAX_EGL_DEVICES, devices, ctypes.byref(count)) or count.value == 0:
        return "no EGL devices (no GPU driver and no Mesa EGL, e.g. package libegl-mesa0)"
    indices = range(count.value)
    chosen = os.environ.get("MUJOCO_EGL_DEVICE_ID")  # dm_control honours it: so do we
    if chosen is not None and chosen.isdigit():
        indices = [i for i in indices if i == int(chosen)]
    initialize = egl.eglInitialize
    initialize.restype = ctypes.c_uint
    initialize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    for i in indices:
        display = get_display(_EGL_PLATFORM_DEVICE_EXT, devices[i], None)
        if display and initialize(display, None, None) == 1:
            return None
    return f"none of {count.value} EGL device(s) could be initialised"


def probe_osmesa() -> str | None:
    """None if libOSMesa loads and creates (then frees) a context, else why not."""
    lib = _load_first(("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"), "OSMesa")
    if lib is None:
        return "libOSMesa not found (package libosmesa6)"
    create = lib.OSMesaCreateContextExt
    create.restype = ctypes.c_void_p
    create.argtypes = [ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    context = create(_OSMESA_RGBA, 24, 8, 0, None)
    if not context:
        return "OSMesaCreateContextExt failed"
    lib.OSMesaDestroyContext.argtypes = [ctypes.c_void_p]
    lib.OSMesaDestroyContext(context)
    return None


def _run_probe(name: str) -> str | None:
    probe = probe_egl if name == "egl" else probe_osmesa  # looked up at call time (tests patch)
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - a broken driver must not break state envs
        return f"probe failed: {type(exc).__name__}: {exc}"


def choose_backend(environ: dict | None = None) -> str:
    """The backend to use: a set ``MUJOCO_GL``, else 'egl', else 'osmesa' (whichever probes
    fine); raise GLUnavailableError naming the packages to install when neither works."""
    environ = os.environ if environ is None else environ
    user = environ.get("MUJOCO_GL")
    if user:
        return user.lower()
    reasons = {}
    for name in ("egl", "osmesa"):
        reasons[name] = _run_probe(name)
        if reasons[name] is None:
            return name
    raise GLUnavailableError(
        "no OpenGL backend for MuJoCo rendering (needed for pixel observations and videos): "
        f"EGL: {reasons['egl']}; OSMesa: {reasons['osmesa']}. {INSTALL_HINT}"
    )


def _adopt_late(backend: str) -> None:
    """dm_control was imported with MUJOCO_GL unset: make it use ``backend`` from now on."""
    render = sys.modules["dm_control._render"]
    if render.BACKEND == backend:
        return
    if backend == "egl":
        from dm_control._render.pyopengl.egl_renderer import EGLContext as context
    elif backend == "osmesa":
        from dm_control._render.pyopengl.osmesa_renderer import OSMesaContext as context
    else:  # pragma: no cover - choose_backend only returns these when MUJOCO_GL is unset
        return
    render.Renderer, render.BACKEND, render.USING_GPU = context, backend, backend == "egl"


def configure_gl() -> str | None:
    """Choose the backend once per process (see the module docstring); never raises, so that
    state-only use works without OpenGL. Returns the backend name, or None if there is none."""
    global _configured, _backend, _error
    if _configured:
        return _backend
    _configured = True
    user_set = bool(os.environ.get("MUJOCO_GL"))
    try:
        _backend = choose_backend()
    except GLUnavailableError as exc:
        _error = exc
        return None
    if user_set:
        return _backend
    os.environ["MUJOCO_GL"] = _backend
    if "dm_control._render" in sys.modules:
        try:
            _adopt_late(_backend)
        except Exception as exc:  # noqa: BLE001 - e.g. PyOpenGL already on another platform
            _error = GLUnavailableError(
                f"dm_control was imported before envs.gl could set MUJOCO_GL and switching it to "
                f"{_backend!r} failed ({type(exc).__name__}: {exc}); set MUJOCO_GL={_backend} in "
                f"the environment, or import envs before dm_control"
            )
    return _backend


def ensure_rendering() -> str:
    """Return the backend dm_control renders with; raise GLUnavailableError (with what to
    install) if rendering cannot work. Cheap after the first call."""
    configure_gl()
    if _error is not None:
        raise _error
    requested = os.environ.get("MUJOCO_GL", "")
    if requested.lower() in _DISABLED:
        raise GLUnavailableError(f"MUJOCO_GL={requested} disables rendering. {INSTALL_HINT}")
    try:
        from dm_control import _render
    except (ImportError, RuntimeError) as exc:
        raise GLUnavailableError(
            f"MUJOCO_GL={requested} is set but dm_control cannot load that OpenGL backend "
            f"({type(exc).__name__}: {exc}). {INSTALL_HINT}"
        ) from exc
    backend = _render.BACKEND
    if backend is None or backend in _DISABLED:
        raise GLUnavailableError(f"dm_control found no OpenGL backend. {INSTALL_HINT}")
    if backend == "glfw" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise GLUnavailableError(
            "dm_control renders with GLFW, which needs a display, and none is set (DISPLAY); "
            f"set MUJOCO_GL=egl for headless rendering. {INSTALL_HINT}"
        )
    return backend
